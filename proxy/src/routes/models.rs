//! `GET /v1/models` and `GET /v1/models/{id}`.

use http::{Response, StatusCode};

use crate::http::respond::{json, Body};
use crate::http::ServerState;
use crate::models::ModelSlot;
use crate::openai::{ModelList, ModelObject};
use crate::Result;

fn model_object(state: &ServerState, slot: &ModelSlot) -> ModelObject {
    ModelObject {
        id: slot.spec.id.clone(),
        object: "model",
        created: state.started,
        owned_by: "porten",
        kind: slot.kind().as_str(),
        state: slot.state().name(),
    }
}

/// Every served model.
pub fn list(state: &ServerState) -> Response<Body> {
    let data = state
        .models
        .iter()
        .map(|slot| model_object(state, slot))
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
    Ok(json(StatusCode::OK, &model_object(state, slot)))
}
