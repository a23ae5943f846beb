//! What the chat and text completion streams share: waiting for the engine's next chunk while
//! watching for the client to leave, and ending the stream the same way when the engine fails
//! or the client goes.

use mistralrs::Response as EngineResponse;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::{error_object, error_type};
use crate::engine;
use crate::generation::client_left;
use crate::http::sse::EventSender;
use crate::telemetry::Exchange;

/// The next step of a stream.
pub(super) enum Next<T> {
    /// The engine's next chunk.
    Chunk(T),
    /// The engine's channel closed: what the stream sends at its end follows.
    Closed,
    /// The stream is over: the client left, or the engine failed (already sent as an error
    /// event and `[DONE]`).
    Over,
}

/// Waits for the engine's next answer. `chunk_of` takes the stream's chunk out of it, or
/// hands any other answer back (boxed: answers are large), which is an engine failure.
pub(super) async fn next_chunk<T>(
    answers: &mut mpsc::Receiver<EngineResponse>,
    events: &EventSender,
    exchange: &Exchange,
    chunk_of: fn(EngineResponse) -> Result<T, Box<EngineResponse>>,
) -> Next<T> {
    let answer = tokio::select! {
        answer = answers.recv() => answer,
        () = events.closed() => {
            client_left(exchange);
            return Next::Over;
        }
    };
    let Some(answer) = answer else {
        return Next::Closed;
    };
    match chunk_of(answer) {
        Ok(chunk) => Next::Chunk(chunk),
        Err(other) => {
            let error = engine::engine_failure(*other);
            tracing::warn!(error = %error, "generation failed mid-stream");
            exchange.failed_midway(error_type(&error));
            let _ = events.send_json(&error_object(&error)).await;
            let _ = events.send_done().await;
            Next::Over
        }
    }
}

/// Sends one chunk; `false` when the client has left (counted as such).
pub(super) async fn send_chunk(
    events: &EventSender,
    chunk: &impl Serialize,
    exchange: &Exchange,
) -> bool {
    exchange.token_sent();
    if events.send_json(chunk).await.is_err() {
        client_left(exchange);
        return false;
    }
    true
}
