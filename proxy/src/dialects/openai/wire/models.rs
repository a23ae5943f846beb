//! `GET /v1/models` and `GET /v1/models/{id}`.

use serde::Serialize;

/// The list of models.
#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    /// `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<ModelObject>,
}

/// One model, with porten's own fields after OpenAI's.
#[derive(Debug, Clone, Serialize)]
pub struct ModelObject {
    /// The id clients put in `"model"`.
    pub id: String,
    /// `model`.
    pub object: &'static str,
    /// Unix seconds when this server started serving it.
    pub created: u64,
    /// `porten`.
    pub owned_by: &'static str,
    /// `chat` or `embedding`.
    pub kind: &'static str,
    /// `available` (not in memory; loads on its first request), `loading`, `loaded`,
    /// `unloading` or `failed`.
    pub state: &'static str,
    /// What porten expects it to take in memory, in bytes.
    pub estimated_bytes: u64,
    /// The largest amount a load of it was measured to take, in bytes.
    pub measured_bytes: Option<u64>,
    /// Tokens of context per sequence its estimate is sized for.
    pub context_length: u64,
}
