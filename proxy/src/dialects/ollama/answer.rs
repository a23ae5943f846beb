//! An answer in Ollama's shape: for a stream, one NDJSON line per piece of text (or per tool
//! call), then a last line with `done: true`, `done_reason` and the measured durations; for one
//! object, that last line with the whole message.

use std::time::Instant;

use serde_json::Value;

use super::time::rfc3339_now;
use super::wire::{AnswerMessage, CallFunction, ChatLine, Durations, GenerateLine, ToolCall};
use crate::generation::drive::{Named, Render};
use crate::generation::{CalledTool, Ending, Finish};

/// Which route's lines these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/chat`: `message`.
    Chat,
    /// `/api/generate`: `response`.
    Generate,
}

/// When the steps of a request happened, for the durations of its last line.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The request arrived.
    pub received: Instant,
    /// The engine took the prompt (after the queue and any load).
    pub started: Instant,
}

/// Ollama's rendering of one answer.
pub struct Answer {
    route: Route,
    model: String,
    streaming: bool,
    clock: Clock,
    first_token: Option<Instant>,
    text: String,
    calls: Vec<ToolCall>,
    /// The last line (the whole answer, when not streaming), once the answer has ended.
    pub last: Option<Value>,
}

impl Answer {
    /// An answer to a request for `model` (as the client named it).
    pub fn new(route: Route, model: String, streaming: bool, clock: Clock) -> Self {
        Self {
            route,
            model,
            streaming,
            clock,
            first_token: None,
            text: String::new(),
            calls: Vec::new(),
            last: None,
        }
    }

    fn line(
        &self,
        text: String,
        calls: Option<Vec<ToolCall>>,
        done_reason: Option<&'static str>,
        durations: Option<Durations>,
    ) -> Value {
        let done = done_reason.is_some();
        let line = match self.route {
            Route::Chat => serde_json::to_value(ChatLine {
                model: self.model.clone(),
                created_at: rfc3339_now(),
                message: AnswerMessage {
                    role: "assistant",
                    content: text,
                    tool_calls: calls,
                },
                done,
                done_reason,
                durations,
            }),
            Route::Generate => serde_json::to_value(GenerateLine {
                model: self.model.clone(),
                created_at: rfc3339_now(),
                response: text,
                done,
                done_reason,
                durations,
            }),
        };
        line.expect("wire types always serialize")
    }

    fn saw_token(&mut self) {
        self.first_token.get_or_insert_with(Instant::now);
    }
}

impl Render for Answer {
    fn text(&mut self, delta: &str) -> Vec<Named> {
        self.saw_token();
        if self.streaming {
            return vec![("", self.line(delta.to_string(), None, None, None))];
        }
        self.text.push_str(delta);
        Vec::new()
    }

    fn calls(&mut self, calls: Vec<CalledTool>) -> Vec<Named> {
        self.saw_token();
        let start = self.calls.len();
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| ToolCall {
                function: CallFunction {
                    index: Some((start + i) as u32),
                    name: call.name,
                    // Ollama's arguments are an object; a model's malformed JSON stays text.
                    arguments: serde_json::from_str(&call.arguments)
                        .unwrap_or(Value::String(call.arguments)),
                },
            })
            .collect();
        // Ollama's `/api/generate` has no calls: they only come on the chat route.
        if self.route == Route::Generate {
            return Vec::new();
        }
        if self.streaming {
            return vec![("", self.line(String::new(), Some(calls), None, None))];
        }
        self.calls.extend(calls);
        Vec::new()
    }

    fn end(&mut self, ending: &Ending) -> Vec<Named> {
        let now = Instant::now();
        let first = self.first_token.unwrap_or(now);
        let nanos =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_nanos() as u64;
        let durations = Durations {
            total_duration: nanos(self.clock.received, now),
            load_duration: nanos(self.clock.received, self.clock.started),
            prompt_eval_count: ending.prompt_tokens,
            prompt_eval_duration: nanos(self.clock.started, first),
            eval_count: ending.completion_tokens,
            eval_duration: nanos(first, now),
        };
        let reason = match ending.finish {
            Finish::Length => "length",
            Finish::Stop | Finish::ToolCalls | Finish::StopSequence(_) => "stop",
        };
        let text = std::mem::take(&mut self.text);
        let calls = Some(std::mem::take(&mut self.calls)).filter(|c| !c.is_empty());
        let last = self.line(text, calls, Some(reason), Some(durations));
        self.last = Some(last.clone());
        if self.streaming {
            vec![("", last)]
        } else {
            Vec::new()
        }
    }
}

/// The one line of a request that only loads (`done_reason: "load"`) or unloads (`"unload"`)
/// its model.
pub fn residency_line(route: Route, model: &str, done_reason: &'static str) -> Value {
    let answer = Answer::new(
        route,
        model.to_string(),
        false,
        Clock {
            received: Instant::now(),
            started: Instant::now(),
        },
    );
    answer.line(String::new(), None, Some(done_reason), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock {
            received: Instant::now(),
            started: Instant::now(),
        }
    }

    #[test]
    fn a_stream_has_a_line_per_piece_and_a_last_line_with_durations() {
        let mut answer = Answer::new(Route::Chat, "m".into(), true, clock());
        let first = answer.text("Hel");
        assert_eq!(first[0].1["message"]["content"], "Hel");
        assert_eq!(first[0].1["done"], false);
        assert!(first[0].1.get("total_duration").is_none());
        let last = answer.end(&Ending {
            finish: Finish::Length,
            prompt_tokens: 5,
            completion_tokens: 1,
        });
        let last = &last[0].1;
        assert_eq!(last["done"], true);
        assert_eq!(last["done_reason"], "length");
        assert_eq!(last["prompt_eval_count"], 5);
        assert_eq!(last["eval_count"], 1);
        assert!(
            last["total_duration"].as_u64().unwrap() >= last["eval_duration"].as_u64().unwrap()
        );
    }

    #[test]
    fn one_object_carries_the_whole_text_and_calls_with_object_arguments() {
        let mut answer = Answer::new(Route::Chat, "m".into(), false, clock());
        assert!(answer.text("a").is_empty());
        assert!(answer
            .calls(vec![CalledTool {
                id: "x".into(),
                name: "f".into(),
                arguments: r#"{"k": 1}"#.into(),
            }])
            .is_empty());
        answer.end(&Ending {
            finish: Finish::ToolCalls,
            prompt_tokens: 1,
            completion_tokens: 2,
        });
        let last = answer.last.unwrap();
        assert_eq!(last["message"]["content"], "a");
        assert_eq!(
            last["message"]["tool_calls"][0]["function"]["arguments"]["k"],
            1
        );
        assert_eq!(last["done_reason"], "stop");
    }

    #[test]
    fn generate_lines_carry_response() {
        let line = residency_line(Route::Generate, "m", "load");
        assert_eq!(line["response"], "");
        assert_eq!(line["done_reason"], "load");
        assert_eq!(line["done"], true);
    }
}
