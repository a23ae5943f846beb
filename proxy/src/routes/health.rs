//! `GET /health` (the process is up) and `GET /ready` (every model is loaded).

use std::collections::BTreeMap;

use http::{Response, StatusCode};
use serde_json::json;

use crate::http::respond::{json, Body};
use crate::http::ServerState;
use crate::models::LoadState;

/// Liveness: answers as long as the process serves HTTP.
pub fn health() -> Response<Body> {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Readiness: 200 once every model is loaded, 503 while one is loading or has failed.
pub fn ready(state: &ServerState) -> Response<Body> {
    let mut models = BTreeMap::new();
    let mut all_loaded = true;
    for slot in state.models.iter() {
        let model_state = slot.state();
        all_loaded &= matches!(model_state, LoadState::Ready(_));
        models.insert(slot.spec.id.clone(), model_state.name());
    }
    let (status, word) = if all_loaded {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    json(status, &json!({"status": word, "models": models}))
}
