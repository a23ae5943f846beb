//! Server-sent events: `data: {json}\n\n` per event (OpenAI's chat streams, ending with
//! `data: [DONE]\n\n`), or `event: NAME\ndata: {json}\n\n` (the Responses and Anthropic
//! streams), each flushed as it is produced; or newline-delimited JSON, one object a line
//! (Ollama's streams). The sender learns when the client has gone away.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use tokio::sync::mpsc;

use super::respond::Body;

/// The producing end of an event stream.
pub struct EventSender {
    tx: mpsc::Sender<Bytes>,
    /// Newline-delimited JSON instead of SSE: events are bare lines, comments are not sent.
    ndjson: bool,
}

/// The client hung up; stop producing.
#[derive(Debug)]
pub struct ClientGone;

/// A streaming SSE response and the sender that feeds it.
pub fn channel() -> (EventSender, Response<Body>) {
    stream("text/event-stream", false)
}

/// A streaming NDJSON response (`application/x-ndjson`) and the sender that feeds it.
pub fn ndjson_channel() -> (EventSender, Response<Body>) {
    stream("application/x-ndjson", true)
}

fn stream(content_type: &'static str, ndjson: bool) -> (EventSender, Response<Body>) {
    // A small buffer: the stream is paced by the engine, and back-pressure from a slow
    // client should reach the producer instead of piling up here.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (EventSender { tx, ndjson }, response)
}

impl EventSender {
    /// Sends one JSON event.
    pub async fn send_json<T: Serialize>(&self, event: &T) -> Result<(), ClientGone> {
        let json = serde_json::to_vec(event).expect("wire types always serialize");
        let mut frame = Vec::with_capacity(json.len() + 8);
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        self.send(Bytes::from(frame)).await
    }

    /// Sends one JSON event under the name `event` (a bare line in NDJSON, which has no names).
    pub async fn send_named<T: Serialize>(&self, event: &str, data: &T) -> Result<(), ClientGone> {
        let json = serde_json::to_vec(data).expect("wire types always serialize");
        if self.ndjson {
            let mut line = json;
            line.push(b'\n');
            return self.send(Bytes::from(line)).await;
        }
        let mut frame = Vec::with_capacity(json.len() + event.len() + 16);
        frame.extend_from_slice(b"event: ");
        frame.extend_from_slice(event.as_bytes());
        frame.extend_from_slice(b"\ndata: ");
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        self.send(Bytes::from(frame)).await
    }

    /// Sends an SSE comment, which clients ignore: it keeps an idle stream from looking dead.
    pub async fn send_comment(&self, text: &str) -> Result<(), ClientGone> {
        if self.ndjson {
            // An NDJSON reader parses every line; a stream waits in silence instead.
            return Ok(());
        }
        self.send(Bytes::from(format!(": {text}\n\n"))).await
    }

    /// Whether the client has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends the closing `[DONE]` event.
    pub async fn send_done(&self) -> Result<(), ClientGone> {
        self.send(Bytes::from_static(b"data: [DONE]\n\n")).await
    }

    async fn send(&self, bytes: Bytes) -> Result<(), ClientGone> {
        self.tx.send(bytes).await.map_err(|_| ClientGone)
    }

    /// Resolves when the client has gone away (the response body was dropped).
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}
