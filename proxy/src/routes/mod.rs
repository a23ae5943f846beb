//! One module per endpoint family.

pub mod admin;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod models;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{LoadedModel, ModelKind};
use crate::{Error, Result};

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
