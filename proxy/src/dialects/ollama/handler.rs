//! `POST /api/chat`, `POST /api/generate`, `POST /api/embed` and `POST /api/embeddings`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mistralrs::RequestMessage;
use serde_json::json;
use tracing::Instrument;

use super::answer::{residency_line, Answer, Clock, Route};
use super::error::error_line;
use super::input::{read_chat, read_generate, refuse_unsupported_generate, sampling, Read};
use super::models::resolve_or_pull;
use super::wire::{ChatRequest, EmbedInput, EmbedRequest, GenerateRequest, LegacyEmbedRequest};
use crate::dialects::check_embedding_inputs;
use crate::dialects::openai::error::error_type;
use crate::engine::ModelKind;
use crate::generation::drive::{drive, Heartbeat, Sink};
use crate::generation::{self, admit, require_kind, Ask, Prompt};
use crate::http::respond::{json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::residency::KeepAlive;
use crate::telemetry::Exchange;
use crate::Result;

/// Serves `POST /api/chat`.
pub async fn chat(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let received = Instant::now();
    let request: ChatRequest = read_json(req, &state.config).await?;
    let id = resolve_or_pull(state, &request.model).await?;
    if request.messages.is_empty() {
        return load_or_unload(
            state,
            exchange,
            Route::Chat,
            &request.model,
            &id,
            request.keep_alive,
        )
        .await;
    }
    let read = read_chat(&request)?;
    let streaming = request.stream.unwrap_or(true);
    let what = Asked {
        route: Route::Chat,
        name: request.model,
        id,
        keep_alive: request.keep_alive,
        streaming,
        received,
    };
    answer(state, exchange, what, read).await
}

/// Serves `POST /api/generate`.
pub async fn generate(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let received = Instant::now();
    let request: GenerateRequest = read_json(req, &state.config).await?;
    let id = resolve_or_pull(state, &request.model).await?;
    if request.prompt.as_deref().unwrap_or_default().is_empty() {
        refuse_unsupported_generate(&request)?;
        return load_or_unload(
            state,
            exchange,
            Route::Generate,
            &request.model,
            &id,
            request.keep_alive,
        )
        .await;
    }
    let read = if request.raw.unwrap_or(false) {
        refuse_unsupported_generate(&request)?;
        let default_options = Default::default();
        let (sampling, stops) = sampling(request.options.as_ref().unwrap_or(&default_options))?;
        Read {
            prompt: Prompt {
                sampling,
                raw: request.prompt.clone(),
                ..Prompt::default()
            },
            stops,
        }
    } else {
        read_generate(&request)?
    };
    let what = Asked {
        route: Route::Generate,
        name: request.model,
        id,
        keep_alive: request.keep_alive,
        streaming: request.stream.unwrap_or(true),
        received,
    };
    answer(state, exchange, what, read).await
}

/// What a generating request asked for, besides its prompt.
struct Asked {
    route: Route,
    /// The model as the client named it (echoed in every line).
    name: String,
    /// The model's id here.
    id: String,
    keep_alive: Option<KeepAlive>,
    streaming: bool,
    received: Instant,
}

async fn answer(
    state: &Arc<ServerState>,
    exchange: &Exchange,
    what: Asked,
    read: Read,
) -> Result<Response<Body>> {
    let ask = Ask {
        model: what.id,
        keep_alive: what.keep_alive,
        operation: match what.route {
            Route::Chat => "chat",
            Route::Generate => "generate",
        },
        prompt: read.prompt,
        own_stops: read.stops,
    };
    // Ollama answers once the model is loaded; its streams have no keep-alive lines to send
    // meanwhile, so failures up to here are plain HTTP errors.
    let started = generation::start(state.models.clone(), exchange.clone(), ask).await?;
    let clock = Clock {
        received: what.received,
        started: Instant::now(),
    };
    let mut answer = Answer::new(what.route, what.name, what.streaming, clock);
    if !what.streaming {
        drive(started, &mut answer, None, exchange).await?;
        return Ok(json(StatusCode::OK, &answer.last));
    }
    let (events, response) = sse::ndjson_channel();
    let exchange = exchange.clone();
    let span = exchange.span().clone();
    tokio::spawn(
        async move {
            let sink = Sink {
                events: &events,
                every: Duration::from_secs(10),
                heartbeat: Heartbeat::Comment("waiting"),
            };
            if let Err(error) = drive(started, &mut answer, Some(&sink), &exchange).await {
                if events.is_closed() {
                    return;
                }
                tracing::warn!(error = %error, "answer failed mid-stream");
                exchange.failed_midway(error_type(&error));
                let _ = events.send_named("error", &error_line(&error)).await;
            }
        }
        .instrument(span),
    );
    Ok(response)
}

/// Ollama's convention for a request with nothing to answer: it loads the model, or with
/// `keep_alive: 0` unloads it.
async fn load_or_unload(
    state: &ServerState,
    exchange: &Exchange,
    route: Route,
    name: &str,
    id: &str,
    keep_alive: Option<KeepAlive>,
) -> Result<Response<Body>> {
    if keep_alive.is_some_and(|k| k.duration() == Some(Duration::ZERO)) {
        state.models.scheduler().unload(id).await?;
        return Ok(json(StatusCode::OK, &residency_line(route, name, "unload")));
    }
    let model = admit(&state.models, exchange, "load", id, keep_alive).await?;
    require_kind(&model, ModelKind::Chat, name)?;
    Ok(json(StatusCode::OK, &residency_line(route, name, "load")))
}

/// Serves `POST /api/embed`.
pub async fn embed(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let received = Instant::now();
    let request: EmbedRequest = read_json(req, &state.config).await?;
    let id = resolve_or_pull(state, &request.model).await?;
    let inputs = match request.input {
        EmbedInput::One(text) => vec![text],
        EmbedInput::Many(texts) => texts,
    };
    let empty: Vec<bool> = inputs.iter().map(String::is_empty).collect();
    check_embedding_inputs(&empty, request.dimensions)?;
    let model = admit(
        &state.models,
        exchange,
        "embeddings",
        &id,
        request.keep_alive,
    )
    .await?;
    require_kind(&model, ModelKind::Embedding, &request.model)?;
    let loaded = Instant::now();
    let vectors = try_join_all(
        inputs
            .into_iter()
            .map(|prompt| model.embed(RequestMessage::Embedding { prompt })),
    )
    .await?;
    let tokens: usize = vectors.iter().map(|(_, n)| n).sum();
    let embeddings: Vec<Vec<f32>> = vectors
        .into_iter()
        .map(|(vector, _)| match request.dimensions {
            // Ollama truncates and renormalizes (Matryoshka embeddings).
            Some(d) if d < vector.len() => normalized(&vector[..d]),
            _ => vector,
        })
        .collect();
    exchange.usage(Some(tokens), 0);
    let nanos = |from: Instant| from.elapsed().as_nanos() as u64;
    Ok(json(
        StatusCode::OK,
        &json!({
            "model": request.model,
            "embeddings": embeddings,
            "total_duration": nanos(received),
            "load_duration": loaded.saturating_duration_since(received).as_nanos() as u64,
            "prompt_eval_count": tokens,
        }),
    ))
}

/// Serves `POST /api/embeddings`, the older route: one prompt, one `embedding`.
pub async fn embeddings(
    state: &ServerState,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: LegacyEmbedRequest = read_json(req, &state.config).await?;
    let id = resolve_or_pull(state, &request.model).await?;
    let model = admit(
        &state.models,
        exchange,
        "embeddings",
        &id,
        request.keep_alive,
    )
    .await?;
    require_kind(&model, ModelKind::Embedding, &request.model)?;
    // Ollama's old route answers an empty prompt with an empty vector.
    if request.prompt.is_empty() {
        return Ok(json(StatusCode::OK, &json!({"embedding": []})));
    }
    let (embedding, tokens) = model
        .embed(RequestMessage::Embedding {
            prompt: request.prompt,
        })
        .await?;
    exchange.usage(Some(tokens), 0);
    Ok(json(StatusCode::OK, &json!({ "embedding": embedding })))
}

fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector.iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn truncated_vectors_are_renormalized() {
        let v = normalized(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalized(&[0.0, 0.0]), vec![0.0, 0.0]);
    }
}
