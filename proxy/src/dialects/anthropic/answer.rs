//! A message built from the answer's events, and, for a stream, Anthropic's events in their
//! order: `message_start`, then per block `content_block_start`, `content_block_delta`
//! (`text_delta`, `input_json_delta`), `content_block_stop`, then `message_delta` with the stop
//! reason and `message_stop`.

use serde_json::{json, Map, Value};

use super::wire::{ContentBlock, Message, MessageUsage};
use crate::generation::drive::{Named as StreamEvent, Render};
use crate::generation::{fresh_id, CalledTool, Ending, Finish};

/// Builds one message.
pub struct Answer {
    /// The message so far.
    pub message: Message,
    streaming: bool,
    /// Whether the last block is text still being written.
    text_open: bool,
}

impl Answer {
    /// Starts the message for `model`, whose prompt took `input_tokens`.
    pub fn new(model: String, input_tokens: usize, streaming: bool) -> Self {
        Self {
            message: Message {
                id: fresh_id("msg", '_'),
                kind: "message",
                role: "assistant",
                model,
                content: Vec::new(),
                stop_reason: None,
                stop_sequence: None,
                usage: MessageUsage {
                    input_tokens,
                    ..MessageUsage::default()
                },
            },
            streaming,
            text_open: false,
        }
    }

    /// `message_start`, and a first `ping`, as Anthropic sends.
    pub fn begin(&self) -> Vec<StreamEvent> {
        vec![
            event("message_start", json!({"message": self.message})),
            ping(),
        ]
    }

    fn close_text(&mut self, events: &mut Vec<StreamEvent>) {
        if std::mem::take(&mut self.text_open) {
            let index = self.last();
            self.stream(events, "content_block_stop", json!({ "index": index }));
        }
    }

    fn last(&self) -> usize {
        self.message.content.len().saturating_sub(1)
    }

    fn stream(&self, events: &mut Vec<StreamEvent>, name: &'static str, data: Value) {
        if self.streaming {
            events.push(event(name, data));
        }
    }
}

impl Render for Answer {
    /// More text.
    fn text(&mut self, delta: &str) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if !self.text_open {
            self.text_open = true;
            self.message.content.push(ContentBlock::Text {
                text: String::new(),
            });
            self.stream(
                &mut events,
                "content_block_start",
                json!({"index": self.last(), "content_block": {"type": "text", "text": ""}}),
            );
        }
        if let Some(ContentBlock::Text { text }) = self.message.content.last_mut() {
            text.push_str(delta);
        }
        self.stream(
            &mut events,
            "content_block_delta",
            json!({"index": self.last(), "delta": {"type": "text_delta", "text": delta}}),
        );
        events
    }

    /// Tool calls, one `tool_use` block each.
    fn calls(&mut self, calls: Vec<CalledTool>) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.close_text(&mut events);
        for call in calls {
            let input = match serde_json::from_str::<Value>(&call.arguments) {
                Ok(Value::Object(map)) => Value::Object(map),
                Ok(other) => json!({ "value": other }),
                Err(_) => json!({ "value": call.arguments }),
            };
            let id = fresh_id("toolu", '_');
            self.message.content.push(ContentBlock::ToolUse {
                id: id.clone(),
                name: call.name.clone(),
                input: input.clone(),
            });
            let index = self.last();
            self.stream(
                &mut events,
                "content_block_start",
                json!({"index": index, "content_block":
                    {"type": "tool_use", "id": id, "name": call.name, "input": Map::new()}}),
            );
            self.stream(
                &mut events,
                "content_block_delta",
                json!({"index": index, "delta":
                    {"type": "input_json_delta", "partial_json": input.to_string()}}),
            );
            self.stream(&mut events, "content_block_stop", json!({"index": index}));
        }
        events
    }

    /// The end: the stop reason, the output tokens, `message_delta` and `message_stop`.
    fn end(&mut self, ending: &Ending) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.close_text(&mut events);
        let (reason, sequence) = match &ending.finish {
            Finish::Stop => ("end_turn", None),
            Finish::Length => ("max_tokens", None),
            Finish::ToolCalls => ("tool_use", None),
            Finish::StopSequence(s) => ("stop_sequence", Some(s.clone())),
        };
        self.message.stop_reason = Some(reason);
        self.message.stop_sequence = sequence.clone();
        self.message.usage.input_tokens = ending.prompt_tokens;
        self.message.usage.output_tokens = ending.completion_tokens;
        self.stream(
            &mut events,
            "message_delta",
            json!({"delta": {"stop_reason": reason, "stop_sequence": sequence},
                   "usage": {"output_tokens": ending.completion_tokens}}),
        );
        self.stream(&mut events, "message_stop", json!({}));
        events
    }
}

/// `ping`, which clients skip: it tells them the server is still there.
pub fn ping() -> StreamEvent {
    event("ping", json!({}))
}

fn event(name: &'static str, mut data: Value) -> StreamEvent {
    data["type"] = Value::String(name.into());
    (name, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::drive::Render;

    fn names(events: &[StreamEvent]) -> Vec<&'static str> {
        events.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn text_then_a_call_streams_in_anthropic_s_order() {
        let mut answer = Answer::new("m".into(), 12, true);
        let mut events = answer.begin();
        events.extend(answer.text("Let me check."));
        events.extend(answer.calls(vec![CalledTool {
            id: "x".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }]));
        events.extend(answer.end(&Ending {
            finish: Finish::ToolCalls,
            prompt_tokens: 12,
            completion_tokens: 9,
        }));
        assert_eq!(
            names(&events),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 12);
        assert_eq!(events[5].1["index"], 1);
        assert_eq!(events[6].1["delta"]["partial_json"], r#"{"city":"Oslo"}"#);
        assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
        let message = serde_json::to_value(&answer.message).unwrap();
        assert_eq!(message["content"][1]["input"]["city"], "Oslo");
        assert!(message["content"][1]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_"));
    }

    #[test]
    fn a_stop_sequence_is_named_and_a_plain_answer_has_no_events() {
        let mut answer = Answer::new("m".into(), 3, false);
        assert!(answer.text("abc").is_empty());
        answer.end(&Ending {
            finish: Finish::StopSequence("###".into()),
            prompt_tokens: 3,
            completion_tokens: 2,
        });
        let message = serde_json::to_value(&answer.message).unwrap();
        assert_eq!(message["stop_reason"], "stop_sequence");
        assert_eq!(message["stop_sequence"], "###");
        assert_eq!(message["content"][0]["text"], "abc");
        assert_eq!(message["usage"]["output_tokens"], 2);
    }
}
