//! The in-process mistral.rs engine: loading a model from local files, turning OpenAI requests
//! into mistral.rs requests, and mistral.rs answers back into OpenAI ones.

mod chat_request;
mod load;
mod output;
mod sampling;

use std::sync::Arc;

use mistralrs::{Constraint, NormalRequest, Request, RequestMessage, Response, SamplingParams};
use tokio::sync::mpsc;

pub use chat_request::{chat_job, ChatJob};
pub use load::{expected_source, load_model, resolve_source, ModelSource};
pub use output::{
    chat_chunk, chat_completion, completion_chunk_text, finish_reason, logprobs_json,
};
pub use sampling::{completion_sampling, SamplingRequest};

use crate::{Error, Result};

/// What a loaded model can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat and text completions.
    Chat,
    /// Embeddings.
    Embedding,
}

impl ModelKind {
    /// The name shown in `/v1/models`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Chat => "chat",
            ModelKind::Embedding => "embedding",
        }
    }
}

/// A model mistral.rs has loaded, ready to take requests.
pub struct LoadedModel {
    /// What it serves.
    pub kind: ModelKind,
    /// Sampling defaults from the model's `generation_config.json`, if any.
    pub generation_defaults: Option<mistralrs::ModelGenerationDefaults>,
    model: Arc<mistralrs::Model>,
}

/// One generation handed to the engine.
pub struct EngineJob {
    /// The prompt.
    pub message: RequestMessage,
    /// How to sample.
    pub sampling: SamplingParams,
    /// Constrained decoding (JSON schema).
    pub constraint: Constraint,
    /// Tools offered to the model.
    pub tools: Option<Vec<mistralrs::Tool>>,
    /// How the model may use them.
    pub tool_choice: Option<mistralrs::ToolChoice>,
    /// Return log probabilities.
    pub logprobs: bool,
    /// Stream token by token.
    pub streaming: bool,
}

impl LoadedModel {
    /// Hands a job to the engine; its answers arrive on the returned channel. Dropping the
    /// receiver cancels the generation: the engine stops the sequence at its next failed send.
    pub async fn submit(&self, job: EngineJob) -> Result<mpsc::Receiver<Response>> {
        let (tx, rx) = mpsc::channel(64);
        let request = Request::Normal(Box::new(NormalRequest {
            messages: job.message,
            sampling_params: job.sampling,
            response: tx,
            return_logprobs: job.logprobs,
            is_streaming: job.streaming,
            id: 0,
            constraint: job.constraint,
            suffix: None,
            tools: job.tools,
            tool_choice: job.tool_choice,
            logits_processors: None,
            return_raw_logits: false,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        }));
        let sender = self
            .model
            .inner()
            .get_sender(None)
            .map_err(|e| Error::Engine(e.to_string()))?;
        sender
            .send(request)
            .await
            .map_err(|_| Error::Engine("the engine has stopped".into()))?;
        Ok(rx)
    }

    /// Embeds one input (text or tokens) and returns the vector and its token count.
    pub async fn embed(&self, message: RequestMessage) -> Result<(Vec<f32>, usize)> {
        let mut rx = self
            .submit(EngineJob {
                message,
                sampling: SamplingParams::deterministic(),
                constraint: Constraint::None,
                tools: None,
                tool_choice: None,
                logprobs: false,
                streaming: false,
            })
            .await?;
        match rx.recv().await {
            Some(Response::Embeddings {
                embeddings,
                prompt_tokens,
                ..
            }) => Ok((embeddings, prompt_tokens)),
            Some(other) => Err(engine_failure(other)),
            None => Err(Error::Engine("the engine dropped the request".into())),
        }
    }
}

/// The error carried by an engine answer that is not the one expected.
pub fn engine_failure(response: Response) -> Error {
    match response {
        Response::ValidationError(e) => Error::InvalidRequest {
            message: e.to_string(),
            param: None,
        },
        Response::InternalError(e) => Error::Engine(e.to_string()),
        Response::ModelError(msg, _) | Response::CompletionModelError(msg, _) => Error::Engine(msg),
        _ => Error::Engine("the engine answered with an unexpected response type".into()),
    }
}
