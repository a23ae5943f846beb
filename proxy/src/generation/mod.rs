//! What every dialect shares between its wire types and the engine: the prompt in no dialect,
//! admission to a model, the context-length check, one answer read as neutral events, and the
//! stop sequences porten matches itself. A dialect parses its body into a [`Prompt`], calls
//! [`start`], and renders the [`Generation`]'s events in its own shape.

pub mod context;
pub mod drive;
pub mod prompt;
pub mod stop;
pub mod stream;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::FutureExt;

pub use context::{fit_context, Fitted};
pub use prompt::{CallRecord, Prompt, Speaker, ToolSpec, ToolUse, Turn};
pub use stream::{CalledTool, Ending, Event, Finish, Generation};

use crate::engine::{LoadedModel, ModelKind};
use crate::models::{Admitted, ModelRegistry};
use crate::residency::KeepAlive;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// `error.type` of a stream the client left before its end.
const CLIENT_GONE: &str = "client_disconnected";

/// Logs and counts a stream whose client left before its end; dropping the engine's channel
/// then cancels the generation.
pub(crate) fn client_left(exchange: &Exchange) {
    tracing::info!("client disconnected; generation cancelled");
    exchange.failed_midway(CLIENT_GONE);
}

/// Waits for `id` to take the request, telling telemetry the operation, the model (when it is
/// one of ours) and how long the request waited.
pub(crate) async fn admit(
    models: &ModelRegistry,
    exchange: &Exchange,
    operation: &'static str,
    id: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<Admitted> {
    if models.get(id).is_ok() {
        exchange.operation(operation, id);
    }
    let admitted = models.admit(id, keep_alive).await?;
    exchange.admitted();
    Ok(admitted)
}

/// A chat answer under way: the model's hold and the answer's events.
pub struct Started {
    /// Keeps the model loaded and the request's engine slot until the answer is over.
    pub model: Admitted,
    /// The answer.
    pub generation: Generation,
}

/// What a dialect asks the engine for.
pub struct Ask {
    /// The model id.
    pub model: String,
    /// The request's keep-alive.
    pub keep_alive: Option<KeepAlive>,
    /// `gen_ai.operation.name` for telemetry.
    pub operation: &'static str,
    /// The prompt.
    pub prompt: Prompt,
    /// Stop sequences porten matches itself (the prompt's sampling must not also carry them).
    pub own_stops: Vec<String>,
}

/// Admits the request to its model (waiting in its queue and for its load), checks the prompt
/// against the model's context and starts the answer. Owns what it needs, so a streaming
/// handler can keep waiting for it after its response has begun.
pub fn start(
    models: Arc<ModelRegistry>,
    exchange: Exchange,
    ask: Ask,
) -> BoxFuture<'static, Result<Started>> {
    async move {
        let model = admit(
            &models,
            &exchange,
            ask.operation,
            &ask.model,
            ask.keep_alive,
        )
        .await?;
        require_kind(&model, ModelKind::Chat, &ask.model)?;
        let mut job = ask
            .prompt
            .into_job(model.generation_defaults.as_ref(), true)?;
        let fitted = fit_context(&model, &mut job, model.context_length, &exchange).await?;
        let sampled = job.sampled.clone();
        let answers = model.submit(job).await?;
        Ok(Started {
            model,
            generation: Generation::new(answers, fitted, ask.own_stops, sampled),
        })
    }
    .boxed()
}

/// Waits up to `patience` for `work`. Done by then, its result; not done (a model loading, a
/// long queue), the rest of the wait, for a streaming answer to do after it has sent its
/// headers, so the client hears something while it waits.
pub async fn within<T: Send + 'static>(
    patience: Duration,
    work: BoxFuture<'static, Result<T>>,
) -> Result<Waited<T>> {
    let mut work = work;
    match tokio::time::timeout(patience, &mut work).await {
        Ok(result) => result.map(Waited::Ready),
        Err(_) => Ok(Waited::Pending(work)),
    }
}

/// The outcome of [`within`].
pub enum Waited<T> {
    /// It finished in time.
    Ready(T),
    /// It goes on.
    Pending(BoxFuture<'static, Result<T>>),
}

impl<T> Waited<T> {
    /// Waits for the rest, calling `tick` every `every` while it does.
    pub async fn finish<F: Future<Output = ()>>(
        self,
        every: Duration,
        mut tick: impl FnMut() -> F,
    ) -> Result<T> {
        let mut work = match self {
            Waited::Ready(value) => return Ok(value),
            Waited::Pending(work) => work,
        };
        loop {
            match tokio::time::timeout(every, &mut work).await {
                Ok(result) => return result,
                Err(_) => tick().await,
            }
        }
    }
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh id: `prefix`, a separator, and 32 hex digits (`chatcmpl-...`, `resp_...`).
pub(crate) fn fresh_id(prefix: &str, separator: char) -> String {
    format!("{prefix}{separator}{}", uuid::Uuid::new_v4().simple())
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
