//! `GET /v1/models` and `GET /v1/models/{id}`.

use http::{Response, StatusCode};

use super::wire::{ModelList, ModelObject};
use crate::http::respond::{json, Body};
use crate::http::ServerState;
use crate::models::ModelSlot;
use crate::residency::ModelResidency;
use crate::Result;

fn model_object(state: &ServerState, slot: &ModelSlot, residency: &ModelResidency) -> ModelObject {
    ModelObject {
        id: slot.spec.id.clone(),
        object: "model",
        created: state.started,
        owned_by: "porten",
        kind: slot.kind().as_str(),
        state: residency.state,
        estimated_bytes: residency.estimated_bytes,
        measured_bytes: residency.measured_bytes,
        context_length: slot.load_settings.context,
    }
}

/// Every served model.
pub fn list(state: &ServerState) -> Response<Body> {
    let data = state
        .models
        .slots_with_residency(state.models.status())
        .into_iter()
        .map(|(slot, residency)| model_object(state, &slot, &residency))
        .collect();
    json(
        StatusCode::OK,
        &ModelList {
            object: "list",
            data,
        },
    )
}

/// One model, or 404.
pub fn get(state: &ServerState, id: &str) -> Result<Response<Body>> {
    state.models.get(id)?;
    let (slot, residency) = state
        .models
        .slots_with_residency(state.models.status())
        .into_iter()
        .find(|(slot, _)| slot.spec.id == id)
        .ok_or_else(|| crate::Error::ModelNotFound(id.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &model_object(state, &slot, &residency),
    ))
}
