//! `GET /health` (the process is up) and `GET /ready` (no model has failed to load).

use std::collections::BTreeMap;

use http::{Response, StatusCode};
use serde_json::json;

use crate::http::respond::{json, Body};
use crate::http::ServerState;

/// Liveness: answers as long as the process serves HTTP.
pub fn health() -> Response<Body> {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Readiness: models load on demand, so the server is ready as soon as it listens; 503 once a
/// model has failed to load. The body gives every model's state.
pub fn ready(state: &ServerState) -> Response<Body> {
    let status = state.models.status();
    let failed = status.models.iter().any(|m| m.state == "failed");
    let models: BTreeMap<_, _> = status
        .models
        .iter()
        .map(|m| (m.id.clone(), m.state))
        .collect();
    let (code, word) = if failed {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    } else {
        (StatusCode::OK, "ready")
    };
    json(code, &json!({"status": word, "models": models}))
}
