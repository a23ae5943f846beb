//! `POST /v1/messages` (one message, or a stream of Anthropic's events) and
//! `POST /v1/messages/count_tokens`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use super::answer::{ping, Answer};
use super::error::error_body;
use super::input::read;
use super::wire::{MessagesRequest, TokenCount};
use crate::dialects::openai::error::error_type;
use crate::engine::ModelKind;
use crate::generation::drive::{drive, Heartbeat, Sink};
use crate::generation::{self, admit, require_kind, Ask, Waited};
use crate::http::respond::{json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::telemetry::Exchange;
use crate::Result;

/// How long a streaming request waits for its model before its stream begins: within it, a
/// failure (a prompt too long, a full queue) is an HTTP error Claude Code understands; past it
/// (a model loading), the stream begins with `ping`s and a failure is an `error` event.
const PATIENCE: Duration = Duration::from_secs(2);
/// How often a `ping` goes out while the stream waits for its model or its first token.
const PING_EVERY: Duration = Duration::from_secs(10);

/// Serves `POST /v1/messages`.
pub async fn messages(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: MessagesRequest = read_json(req, &state.config).await?;
    let read = read(&request, false)?;
    state.models.find(&request.model).await?;
    let streaming = request.stream.unwrap_or(false);
    let ask = Ask {
        model: request.model.clone(),
        keep_alive: request.keep_alive,
        operation: "messages",
        prompt: read.prompt,
        own_stops: read.stops,
    };
    let start = generation::start(state.models.clone(), exchange.clone(), ask);
    if !streaming {
        let started = start.await?;
        let mut answer = Answer::new(request.model, started.generation.prompt_tokens(), false);
        drive(started, &mut answer, None, exchange).await?;
        return Ok(json(StatusCode::OK, &answer.message));
    }
    let waited = generation::within(PATIENCE, start).await?;
    let (events, response) = sse::channel();
    let exchange = exchange.clone();
    let span = exchange.span().clone();
    let model = request.model;
    tokio::spawn(
        async move {
            let sink = Sink {
                events: &events,
                every: PING_EVERY,
                heartbeat: Heartbeat::Event(ping()),
            };
            let started = match waited {
                Waited::Ready(started) => Ok(started),
                pending => {
                    pending
                        .finish(PING_EVERY, || async {
                            let _ = sink.beat().await;
                        })
                        .await
                }
            };
            let outcome = match started {
                Ok(started) => {
                    let mut answer = Answer::new(model, started.generation.prompt_tokens(), true);
                    if sink.send(answer.begin()).await.is_err() {
                        return;
                    }
                    drive(started, &mut answer, Some(&sink), &exchange).await
                }
                Err(e) => Err(e),
            };
            if let Err(error) = outcome {
                if events.is_closed() {
                    return;
                }
                tracing::warn!(error = %error, "message failed mid-stream");
                exchange.failed_midway(error_type(&error));
                let _ = events.send_named("error", &error_body(&error)).await;
            }
        }
        .instrument(span),
    );
    Ok(response)
}

/// Serves `POST /v1/messages/count_tokens`: the prompt's tokens under the model's own
/// tokenizer and chat template, tools included.
pub async fn count_tokens(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: MessagesRequest = read_json(req, &state.config).await?;
    let read = read(&request, true)?;
    let model = admit(
        &state.models,
        exchange,
        "count_tokens",
        &request.model,
        request.keep_alive,
    )
    .await?;
    require_kind(&model, ModelKind::Chat, &request.model)?;
    let job = read
        .prompt
        .into_job(model.generation_defaults.as_ref(), false)?;
    let input_tokens = model
        .count_tokens(&job.message, job.tools.as_deref())
        .await?;
    exchange.usage(Some(input_tokens), 0);
    Ok(json(StatusCode::OK, &TokenCount { input_tokens }))
}
