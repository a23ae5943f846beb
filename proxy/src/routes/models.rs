//! `GET /v1/models` and `GET /v1/models/{id}`.

use http::{Response, StatusCode};

use crate::http::respond::{json, Body};
use crate::http::ServerState;
use crate::models::ModelSlot;
use crate::openai::{ModelList, ModelObject};
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
    let status = state.models.status();
    let data = state
        .models
        .iter()
        .zip(&status.models)
        .map(|(slot, residency)| model_object(state, slot, residency))
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
    let slot = state.models.get(id)?;
    let status = state.models.status();
    let residency = status
        .models
        .iter()
        .find(|m| m.id == id)
        .expect("the scheduler knows every registered model");
    Ok(json(StatusCode::OK, &model_object(state, slot, residency)))
}
