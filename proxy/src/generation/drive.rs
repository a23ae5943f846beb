//! Reading an answer into a dialect's rendering, and streaming what it renders: the loop the
//! Responses and Anthropic handlers share. A stream that has been quiet for a while (a long
//! prompt being read) gets a heartbeat, and a client that leaves ends the loop, which drops the
//! engine's channel and cancels the generation.

use std::time::Duration;

use serde_json::Value;

use super::{CalledTool, Ending, Event, Started};
use crate::http::sse::EventSender;
use crate::telemetry::Exchange;
use crate::{Error, Result};

/// A stream event: its name, and its data.
pub type Named = (&'static str, Value);

/// An API's rendering of one answer: each call updates the answer it builds and returns the
/// stream events to send (none, when it is not streaming).
pub trait Render {
    /// More text.
    fn text(&mut self, delta: &str) -> Vec<Named>;
    /// Complete tool calls.
    fn calls(&mut self, calls: Vec<CalledTool>) -> Vec<Named>;
    /// The end, with its reason and counts.
    fn end(&mut self, ending: &Ending) -> Vec<Named>;
}

/// What keeps a quiet stream alive.
#[derive(Debug, Clone)]
pub enum Heartbeat {
    /// An event of the API's own (Anthropic's `ping`).
    Event(Named),
    /// An SSE comment, which every client skips.
    Comment(&'static str),
}

/// Where a streamed answer goes.
pub struct Sink<'a> {
    /// The stream.
    pub events: &'a EventSender,
    /// Sent after this long without an event.
    pub every: Duration,
    /// What is sent then.
    pub heartbeat: Heartbeat,
}

impl Sink<'_> {
    /// Sends `events` in order.
    pub async fn send(
        &self,
        events: Vec<Named>,
    ) -> std::result::Result<(), crate::http::sse::ClientGone> {
        for (name, data) in events {
            self.events.send_named(name, &data).await?;
        }
        Ok(())
    }

    /// Sends the heartbeat.
    pub async fn beat(&self) -> std::result::Result<(), crate::http::sse::ClientGone> {
        match &self.heartbeat {
            Heartbeat::Event((name, data)) => self.events.send_named(name, data).await,
            Heartbeat::Comment(text) => self.events.send_comment(text).await,
        }
    }
}

/// How a driven answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// With its ending rendered (and sent, for a stream).
    Answered,
    /// The client went away first; its generation is cancelled.
    ClientLeft,
}

/// Reads `started`'s answer into `render`, sending what it renders to `sink` when there is
/// one. The model's hold (in `started`) is released when this returns.
pub async fn drive(
    started: Started,
    render: &mut impl Render,
    sink: Option<&Sink<'_>>,
    exchange: &Exchange,
) -> Result<Ended> {
    let Started {
        model: _model,
        mut generation,
    } = started;
    loop {
        let next = match sink {
            Some(sink) => tokio::select! {
                next = tokio::time::timeout(sink.every, generation.next()) => match next {
                    Ok(next) => next,
                    Err(_) => {
                        if sink.beat().await.is_err() {
                            return Ok(client_left(exchange));
                        }
                        continue;
                    }
                },
                () = sink.events.closed() => return Ok(client_left(exchange)),
            },
            None => generation.next().await,
        };
        let (events, ended) = match next? {
            Some(Event::Text(text)) => {
                exchange.token_sent();
                (render.text(&text), false)
            }
            Some(Event::ToolCalls(calls)) => {
                exchange.token_sent();
                (render.calls(calls), false)
            }
            Some(Event::End(ending)) => {
                exchange.usage(Some(ending.prompt_tokens), ending.completion_tokens);
                (render.end(&ending), true)
            }
            None => return Err(Error::Engine("the answer ended without an ending".into())),
        };
        if let Some(sink) = sink {
            if sink.send(events).await.is_err() {
                return Ok(client_left(exchange));
            }
        }
        if ended {
            return Ok(Ended::Answered);
        }
    }
}

fn client_left(exchange: &Exchange) -> Ended {
    super::client_left(exchange);
    Ended::ClientLeft
}
