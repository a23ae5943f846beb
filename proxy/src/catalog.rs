//! What the server knows of its models beyond the engine, and the model management Ollama's API
//! asks for: each model's facts from its files (format, family, size, quantization, for
//! `/api/tags` and `/api/show`), and pulling, deleting and copying models. The binary implements
//! [`Catalog`] over porten's weight store and mirror; the proxy knows neither.

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::config::ModelSpec;
use crate::models::NewModel;
use crate::Result;

/// What a model's files say about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelFacts {
    /// `gguf` or `safetensors`.
    pub format: String,
    /// The architecture (`llama`, `qwen3`), when known.
    pub family: Option<String>,
    /// Parameters, when counted.
    pub parameter_count: Option<u64>,
    /// `Q4_K_M`, `F16`, ...
    pub quantization: Option<String>,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// A content digest of the weights (hex), stable while the files are.
    pub digest: String,
    /// When the model was imported or last changed (ms since the epoch).
    pub modified_ms: u64,
    /// The context it was trained for.
    pub context_length: Option<u64>,
    /// Hidden size.
    pub embedding_length: Option<u64>,
    /// Transformer blocks.
    pub block_count: Option<u64>,
    /// Attention heads.
    pub head_count: Option<u64>,
    /// Key/value heads.
    pub head_count_kv: Option<u64>,
    /// Tokens in the vocabulary.
    pub vocab_size: Option<u64>,
    /// The chat template the model ships.
    pub chat_template: Option<String>,
}

/// One step of a pull, as Ollama's `/api/pull` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullUpdate {
    /// `pulling manifest`, `pulling <digest>`, `verifying sha256 digest`, `success`...
    pub status: String,
    /// The blob being downloaded.
    pub digest: Option<String>,
    /// Its bytes.
    pub total: Option<u64>,
    /// Bytes of it done.
    pub completed: Option<u64>,
}

impl PullUpdate {
    /// A step with no byte counts.
    pub fn status(status: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            digest: None,
            total: None,
            completed: None,
        }
    }
}

/// Where pull progress goes.
pub type PullProgress = mpsc::UnboundedSender<PullUpdate>;

/// The models behind the server: their facts, and the store actions of Ollama's API. Its
/// blocking methods run off the async threads.
pub trait Catalog: Send + Sync {
    /// What is known of the served model `id` (none for a model it does not know).
    fn facts(&self, id: &str) -> Option<ModelFacts>;

    /// Brings `id` into the store (from the mirror), sending its progress; the model to serve,
    /// already on disk, when it is done.
    fn pull(&self, id: &str, progress: PullProgress) -> BoxFuture<'static, Result<NewModel>>;

    /// Removes `id` from the store (blocking). The server has stopped serving it already.
    fn delete(&self, id: &str) -> Result<()>;

    /// Names the store model `from` (served as `spec`) a second time, as `to` (blocking).
    fn copy(&self, spec: &ModelSpec, to: &str) -> Result<NewModel>;
}
