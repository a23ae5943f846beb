//! One module per endpoint family.

pub mod admin;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod metrics;
pub mod models;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{LoadedModel, ModelKind};
use crate::http::ServerState;
use crate::models::Admitted;
use crate::residency::KeepAlive;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// `error.type` of a stream the client left before its end.
pub(crate) const CLIENT_GONE: &str = "client_disconnected";

/// Waits for `id` to take the request, telling telemetry the operation, the model (when it is
/// one of ours) and how long the request waited.
pub(crate) async fn admit(
    state: &ServerState,
    exchange: &Exchange,
    operation: &'static str,
    id: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<Admitted> {
    if state.models.get(id).is_ok() {
        exchange.operation(operation, id);
    }
    let admitted = state.models.admit(id, keep_alive).await?;
    exchange.admitted();
    Ok(admitted)
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh response id with OpenAI's prefix for its kind (`chatcmpl`, `cmpl`).
pub(crate) fn response_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Fails unless `model` serves `wanted` requests.
pub(crate) fn require_kind(model: &LoadedModel, wanted: ModelKind, id: &str) -> Result<()> {
    if model.kind == wanted {
        return Ok(());
    }
    Err(Error::WrongModelKind(match wanted {
        ModelKind::Chat => {
            format!("`{id}` is an embedding model; send it to /v1/embeddings")
        }
        ModelKind::Embedding => format!("`{id}` is not an embedding model"),
    }))
}
