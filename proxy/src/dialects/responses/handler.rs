//! `POST /v1/responses` (one response object, or a stream of the Responses API's events),
//! `GET` and `DELETE /v1/responses/{id}`, and `GET /v1/responses/{id}/input_items`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tracing::Instrument;

use super::answer::Answer;
use super::input::{input_turns, text_format};
use super::store::Stored;
use super::tools::{offered_tools, tool_use, Offered};
use super::wire::{CreateResponse, Deleted, Input, ResponseObject};
use crate::dialects::openai::error::{error_type, kind_and_code};
use crate::engine::SamplingRequest;
use crate::generation::drive::{drive, Ended, Heartbeat, Sink};
use crate::generation::{self, fresh_id, unix_now, Ask, Prompt, Speaker, Turn};
use crate::http::respond::{client_message, json, Body};
use crate::http::{read_json, sse, ServerState};
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// How long a streaming request waits for its model before its stream begins: past it (a
/// model loading, a long queue), the client gets `response.created` and waits inside it.
const PATIENCE: Duration = Duration::from_secs(2);
/// While a stream waits for its model, an SSE comment this often keeps proxies and clients
/// from calling the connection idle.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A validated request, with the conversation it continues.
struct Planned {
    ask: Ask,
    offered: Offered,
    response: ResponseObject,
    /// The conversation without instructions, to store with the answer.
    conversation: Vec<Turn>,
    input_items: Vec<Value>,
    streaming: bool,
    store: bool,
}

/// Serves `POST /v1/responses`.
pub async fn create(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    exchange: &Exchange,
) -> Result<Response<Body>> {
    let request: CreateResponse = read_json(req, &state.config).await?;
    let planned = plan(state, request)?;
    state.models.find(&planned.ask.model).await?;
    let Planned {
        ask,
        offered,
        response,
        conversation,
        input_items,
        streaming,
        store,
    } = planned;
    let keep = Keep {
        store: store.then(|| state.responses.clone()),
        conversation,
        input_items,
    };
    let mut answer = Answer::new(response, offered.declared, streaming);
    let start = generation::start(state.models.clone(), exchange.clone(), ask);
    if !streaming {
        let started = start.await?;
        drive(started, &mut answer, None, exchange).await?;
        keep.save(&answer);
        return Ok(json(StatusCode::OK, &answer.response));
    }
    let waited = match generation::within(PATIENCE, start).await {
        // A prompt too long is an event of the stream (Codex reads its code from there);
        // anything else that fails before the stream is an HTTP error.
        Err(e) if !matches!(e, Error::ContextLengthExceeded { .. }) => return Err(e),
        other => other,
    };
    let (events, response) = sse::channel();
    let exchange = exchange.clone();
    let span = exchange.span().clone();
    tokio::spawn(
        async move {
            let sink = Sink {
                events: &events,
                every: KEEP_ALIVE,
                heartbeat: Heartbeat::Comment("waiting for the model"),
            };
            if sink.send(answer.begin()).await.is_err() {
                return;
            }
            let started = match waited {
                Ok(waited) => {
                    waited
                        .finish(KEEP_ALIVE, || async {
                            let _ = sink.beat().await;
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            let outcome = match started {
                Ok(started) => drive(started, &mut answer, Some(&sink), &exchange).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Ended::Answered) => keep.save(&answer),
                // Half an answer is not kept: a continuation would read it as whole.
                Ok(Ended::ClientLeft) => {}
                Err(_) if events.is_closed() => {}
                Err(error) => {
                    tracing::warn!(error = %error, "response failed");
                    exchange.failed_midway(error_type(&error));
                    let code = kind_and_code(&error).1.unwrap_or("server_error");
                    let _ = sink.send(answer.fail(code, client_message(&error))).await;
                }
            }
        }
        .instrument(span),
    );
    Ok(response)
}

/// What to store once the answer is complete.
struct Keep {
    store: Option<super::store::ResponseStore>,
    conversation: Vec<Turn>,
    input_items: Vec<Value>,
}

impl Keep {
    fn save(self, answer: &Answer) {
        let Some(store) = self.store else { return };
        let mut conversation = self.conversation;
        conversation.extend(output_turns(&answer.response));
        store.put(Stored {
            object: answer.response.clone(),
            conversation,
            input_items: self.input_items,
        });
    }
}

/// The response's output as turns of the conversation it continues.
fn output_turns(response: &ResponseObject) -> Vec<Turn> {
    use super::tools::offered_name;
    use super::wire::OutputItem;
    let mut text = String::new();
    let mut calls = Vec::new();
    for item in &response.output {
        match item {
            OutputItem::Message { content, .. } => {
                content.iter().for_each(|part| text.push_str(&part.text));
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                namespace,
                ..
            } => calls.push(generation::CallRecord {
                id: call_id.clone(),
                name: offered_name(namespace.as_deref(), name),
                arguments: arguments.clone(),
            }),
            OutputItem::CustomToolCall {
                call_id,
                name,
                input,
                namespace,
                ..
            } => calls.push(generation::CallRecord {
                id: call_id.clone(),
                name: offered_name(namespace.as_deref(), name),
                arguments: json!({ "input": input }).to_string(),
            }),
        }
    }
    vec![Turn::calls(text, calls)]
}

/// Checks `request` and builds its prompt, with the stored conversation it continues.
fn plan(state: &ServerState, request: CreateResponse) -> Result<Planned> {
    let mut conversation = match &request.previous_response_id {
        Some(id) => state
            .responses
            .get(id)
            .ok_or_else(|| Error::ResponseNotFound(id.clone()))?
            .conversation
            .clone(),
        None => Vec::new(),
    };
    let (new_turns, input_items) = match &request.input {
        Some(input) => (
            input_turns(input)?,
            match input {
                Input::Text(text) => vec![json!({"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": text}]})],
                Input::Items(items) => items.clone(),
            },
        ),
        None if request.previous_response_id.is_some() => (Vec::new(), Vec::new()),
        None => return Err(Error::invalid("input", "missing field `input`")),
    };
    conversation.extend(new_turns);
    if conversation.is_empty() {
        return Err(Error::invalid(
            "input",
            "`input` must hold at least one item",
        ));
    }
    let mut turns = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = request.instructions.as_ref().filter(|i| !i.is_empty()) {
        turns.push(Turn::text(Speaker::System, instructions.clone()));
    }
    turns.extend(conversation.iter().cloned());
    let mut offered = offered_tools(request.tools.as_deref().unwrap_or_default())?;
    let tool_use = tool_use(request.tool_choice.as_ref(), &mut offered)?;
    let format = text_format(request.text.as_ref())?;
    let sampling = SamplingRequest {
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_output_tokens.map(|m| (m, "max_output_tokens")),
        ..SamplingRequest::default()
    };
    let streaming = request.stream.unwrap_or(false);
    let store = request.store.unwrap_or(true);
    let response = response_object(&request, store);
    Ok(Planned {
        ask: Ask {
            model: request.model,
            keep_alive: request.keep_alive,
            operation: "responses",
            prompt: Prompt {
                turns,
                tools: offered.specs.clone(),
                tool_use,
                format,
                sampling,
                logprobs: false,
                enable_thinking: None,
                raw: None,
            },
            own_stops: Vec::new(),
        },
        offered,
        response,
        conversation,
        input_items,
        streaming,
        store,
    })
}

/// The response object of `request` as it starts: `in_progress`, nothing produced yet, the
/// request's settings echoed as OpenAI does.
fn response_object(request: &CreateResponse, store: bool) -> ResponseObject {
    let text = match &request.text {
        Some(text) if text.format.is_some() => json!(text),
        _ => json!({"format": {"type": "text"}}),
    };
    ResponseObject {
        id: fresh_id("resp", '_'),
        object: "response",
        created_at: unix_now(),
        status: "in_progress",
        completed_at: None,
        error: None,
        incomplete_details: None,
        instructions: request.instructions.clone(),
        max_output_tokens: request.max_output_tokens,
        model: request.model.clone(),
        output: Vec::new(),
        parallel_tool_calls: request.parallel_tool_calls.unwrap_or(true),
        previous_response_id: request.previous_response_id.clone(),
        reasoning: request
            .reasoning
            .clone()
            .unwrap_or_else(|| json!({"effort": null, "summary": null})),
        store,
        temperature: request.temperature,
        text,
        tool_choice: request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        tools: request.tools.clone().unwrap_or_default(),
        top_p: request.top_p,
        truncation: "disabled",
        usage: None,
        user: request.user.clone(),
        metadata: request.metadata.clone().unwrap_or_default(),
        system_fingerprint: crate::SYSTEM_FINGERPRINT,
    }
}

/// Serves `GET /v1/responses/{id}`.
pub fn retrieve(state: &ServerState, id: &str) -> Result<Response<Body>> {
    let stored = state
        .responses
        .get(id)
        .ok_or_else(|| Error::ResponseNotFound(id.to_string()))?;
    Ok(json(StatusCode::OK, &stored.object))
}

/// Serves `DELETE /v1/responses/{id}`.
pub fn delete(state: &ServerState, id: &str) -> Result<Response<Body>> {
    if !state.responses.remove(id) {
        return Err(Error::ResponseNotFound(id.to_string()));
    }
    Ok(json(
        StatusCode::OK,
        &Deleted {
            id: id.to_string(),
            object: "response",
            deleted: true,
        },
    ))
}

/// Serves `GET /v1/responses/{id}/input_items`: the items the request sent, in order.
pub fn input_items(state: &ServerState, id: &str) -> Result<Response<Body>> {
    let stored = state
        .responses
        .get(id)
        .ok_or_else(|| Error::ResponseNotFound(id.to_string()))?;
    let data: Vec<Value> = stored
        .input_items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut item = item.clone();
            if item.get("id").is_none() {
                item["id"] = json!(format!("{}_in_{i}", stored.object.id));
            }
            item
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": data,
            "first_id": data.first().and_then(|i| i.get("id")).cloned(),
            "last_id": data.last().and_then(|i| i.get("id")).cloned(),
            "has_more": false
        }),
    ))
}

/// A response object for the answer tests.
#[cfg(test)]
pub(super) fn new_response_object_for_tests() -> ResponseObject {
    let request: CreateResponse =
        serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap();
    response_object(&request, true)
}
