//! `POST /v1/chat/completions`: one answer as JSON, or a stream of chunks as SSE.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mistralrs::Response as EngineResponse;
use tokio::sync::mpsc;

use tracing::Instrument;

use super::chat_request::chat_prompt;
use super::output;
use super::stream::{next_chunk, send_chunk, Next};
use super::wire::{ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, Delta, Usage};
use crate::engine::{self, ModelKind, SampledTokens};
use crate::generation::{admit, fit_context, fresh_id, require_kind, unix_now};
use crate::http::respond::{json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::models::Admitted;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// Serves one chat completion request.
pub async fn chat_completions(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: ChatCompletionRequest = read_json(req, &state.config).await?;
    let model_id = request.model.clone();
    let keep_alive = request.keep_alive;
    let ask = chat_prompt(request)?;
    let model = admit(&state.models, exchange, "chat", &model_id, keep_alive).await?;
    require_kind(&model, ModelKind::Chat, &model_id)?;
    let streaming = ask.streaming;
    let mut job = ask
        .prompt
        .into_job(model.generation_defaults.as_ref(), streaming)?;
    let fitted = fit_context(&model, &mut job, model.context_length, exchange).await?;
    let limits = StreamLimits {
        choices: job.sampling.n_choices,
        max_tokens: job.sampling.max_len,
        include_usage: ask.include_usage,
        prompt_tokens: fitted.prompt_tokens,
        sampled: job.sampled.clone(),
    };
    let mut answers = model.submit(job).await?;
    let head = ChunkHead {
        id: fresh_id("chatcmpl", '-'),
        model: model_id,
        created: unix_now(),
    };
    if streaming {
        let (events, response) = sse::channel();
        let span = exchange.span().clone();
        let stream = stream_chunks(answers, events, head, limits, model, exchange.clone());
        tokio::spawn(stream.instrument(span));
        return Ok(response);
    }
    match answers.recv().await {
        Some(EngineResponse::Done(done)) => {
            exchange.usage(Some(done.usage.prompt_tokens), done.usage.completion_tokens);
            Ok(json(
                StatusCode::OK,
                &output::chat_completion(done, head.id, head.model, head.created),
            ))
        }
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
        choices: Vec<ChunkChoice>,
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
    limits: StreamLimits,
    _admitted: Admitted,
    exchange: Exchange,
) {
    let mut role_sent = Vec::new();
    let mut finished = vec![false; limits.choices];
    let mut chunks_seen = vec![0usize; limits.choices];
    let mut usage = None;
    let usage_field = limits.include_usage.then_some(None);
    while finished.iter().any(|f| !f) {
        let chunk = match next_chunk(&mut answers, &events, &exchange, |answer| match answer {
            EngineResponse::Chunk(chunk) => Ok(chunk),
            other => Err(Box::new(other)),
        })
        .await
        {
            Next::Chunk(chunk) => chunk,
            Next::Closed => break,
            Next::Over => return,
        };
        let (deltas, chunk_usage) = output::chat_chunk(chunk, &mut role_sent);
        for delta in &deltas {
            if let Some(seen) = chunks_seen.get_mut(delta.index) {
                *seen += 1;
            }
            if delta.finish_reason.is_some() {
                if let Some(done) = finished.get_mut(delta.index) {
                    *done = true;
                }
            }
        }
        if let Some(u) = chunk_usage {
            usage = Some(u);
        }
        if deltas.is_empty() {
            continue;
        }
        if !send_chunk(&events, &head.chunk(deltas, usage_field), &exchange).await {
            return;
        }
    }
    // mistral.rs skips a token's chunk when its bytes end inside a UTF-8 character; when that
    // is the last token, the finish chunk (and its usage) never comes. Close those choices here.
    // The engine's count of sampled tokens (one choice only) says whether they ran out;
    // without it, the chunks seen, which undercount (a chunk can carry withheld tokens).
    let sampled = limits.sampled.count();
    if let (None, Some(n)) = (&usage, sampled) {
        usage = Some(Usage::new(limits.prompt_tokens, n));
    }
    let seen: Vec<usize> = match sampled {
        Some(n) => vec![n],
        None => chunks_seen.iter().map(|seen| seen + 1).collect(),
    };
    let unfinished = close_unfinished(&finished, &seen, limits.max_tokens);
    if !unfinished.is_empty() {
        tracing::debug!(
            choices = unfinished.len(),
            "engine ended without a finish chunk"
        );
        if events
            .send_json(&head.chunk(unfinished, usage_field))
            .await
            .is_err()
        {
            return;
        }
    }
    let counted_by_engine = usage.is_some();
    // Without the engine's count, the chunks seen are the best lower bound we have.
    let usage = usage.unwrap_or_else(|| Usage::new(0, chunks_seen.iter().sum()));
    let prompt_tokens = counted_by_engine.then_some(usage.prompt_tokens);
    exchange.usage(prompt_tokens, usage.completion_tokens);
    if limits.include_usage {
        let last = head.chunk(Vec::new(), Some(Some(usage)));
        if events.send_json(&last).await.is_err() {
            return;
        }
    }
    let _ = events.send_done().await;
}

/// What a stream needs to know about its request.
struct StreamLimits {
    choices: usize,
    max_tokens: Option<usize>,
    include_usage: bool,
    /// Tokens in the prompt, as porten counted them.
    prompt_tokens: usize,
    /// The engine's count of tokens sampled (counted for one choice only).
    sampled: SampledTokens,
}

/// The finish chunks of the choices the engine left unfinished: `length` where the choice's
/// `tokens` reached the limit, else `stop`.
fn close_unfinished(
    finished: &[bool],
    tokens: &[usize],
    max_tokens: Option<usize>,
) -> Vec<ChunkChoice> {
    finished
        .iter()
        .zip(tokens)
        .enumerate()
        .filter(|(_, (done, _))| !**done)
        .map(|(index, (_, tokens))| {
            let hit_limit = max_tokens.is_some_and(|max| *tokens >= max);
            ChunkChoice {
                index,
                delta: Delta::default(),
                finish_reason: Some(if hit_limit { "length" } else { "stop" }.into()),
                logprobs: None,
            }
        })
        .collect()
}
