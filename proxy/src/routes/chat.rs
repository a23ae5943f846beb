//! `POST /v1/chat/completions`: one answer as JSON, or a stream of chunks as SSE.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mistralrs::Response as EngineResponse;
use tokio::sync::mpsc;

use super::{require_kind, response_id, unix_now};
use crate::admission::Slot;
use crate::engine::{self, chat_job, ModelKind};
use crate::http::respond::{error_object, json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::openai::{ChatCompletionChunk, ChatCompletionRequest, Usage};
use crate::{Error, Result};

/// Serves one chat completion request.
pub async fn chat_completions(
    state: &ServerState,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let request: ChatCompletionRequest = read_json(req, state.config.max_body_bytes).await?;
    let model_id = request.model.clone();
    let slot = state.models.get(&model_id)?;
    let (admitted, model) = slot.admit().await?;
    require_kind(&model, ModelKind::Chat, &model_id)?;
    let job = chat_job(request, model.generation_defaults.as_ref())?;
    let choices = job.engine.sampling.n_choices;
    let streaming = job.engine.streaming;
    let include_usage = job.include_usage;
    let mut answers = model.submit(job.engine).await?;
    let head = ChunkHead {
        id: response_id("chatcmpl"),
        model: model_id,
        created: unix_now(),
    };
    if streaming {
        let (events, response) = sse::channel();
        tokio::spawn(stream_chunks(
            answers,
            events,
            head,
            choices,
            include_usage,
            admitted,
        ));
        return Ok(response);
    }
    match answers.recv().await {
        Some(EngineResponse::Done(done)) => Ok(json(
            StatusCode::OK,
            &engine::chat_completion(done, head.id, head.model, head.created),
        )),
        Some(other) => Err(engine::engine_failure(other)),
        None => Err(Error::Engine("the engine dropped the request".into())),
    }
}

/// What every chunk of one answer shares.
struct ChunkHead {
    id: String,
    model: String,
    created: u64,
}

impl ChunkHead {
    fn chunk(
        &self,
        choices: Vec<crate::openai::ChunkChoice>,
        usage: Option<Option<Usage>>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: crate::SYSTEM_FINGERPRINT.into(),
            choices,
            usage,
        }
    }
}

/// Forwards engine chunks to the client until every choice has finished. If the client goes
/// away, returning drops `answers`, and the engine cancels the generation at its next token.
async fn stream_chunks(
    mut answers: mpsc::Receiver<EngineResponse>,
    events: sse::EventSender,
    head: ChunkHead,
    choices: usize,
    include_usage: bool,
    _admitted: Slot,
) {
    let mut role_sent = Vec::new();
    let mut finished = 0;
    let mut usage = None;
    let usage_field = include_usage.then_some(None);
    while finished < choices {
        let answer = tokio::select! {
            answer = answers.recv() => answer,
            () = events.closed() => {
                tracing::info!("client disconnected; generation cancelled");
                return;
            }
        };
        let chunk = match answer {
            Some(EngineResponse::Chunk(chunk)) => chunk,
            None => break,
            Some(other) => {
                let error = engine::engine_failure(other);
                tracing::warn!(error = %error, "generation failed mid-stream");
                let _ = events.send_json(&error_object(&error)).await;
                let _ = events.send_done().await;
                return;
            }
        };
        let (deltas, chunk_usage) = engine::chat_chunk(chunk, &mut role_sent);
        finished += deltas.iter().filter(|d| d.finish_reason.is_some()).count();
        if let Some(u) = chunk_usage {
            usage = Some(u);
        }
        if deltas.is_empty() {
            continue;
        }
        if events
            .send_json(&head.chunk(deltas, usage_field))
            .await
            .is_err()
        {
            tracing::info!("client disconnected; generation cancelled");
            return;
        }
    }
    if include_usage {
        let last = head.chunk(Vec::new(), Some(Some(usage.unwrap_or_default())));
        if events.send_json(&last).await.is_err() {
            return;
        }
    }
    let _ = events.send_done().await;
}
