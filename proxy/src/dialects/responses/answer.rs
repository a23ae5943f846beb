//! A response built from the answer's events: its output items, and, for a stream, the
//! Responses API's events in order (`response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`... `response.completed`), each
//! with its `sequence_number`, `output_index` and `content_index`.

use serde_json::{json, Value};

use super::tools::{DeclaredTool, ToolKind};
use super::wire::{
    IncompleteDetails, OutputItem, OutputText, ResponseError, ResponseObject, ResponseUsage,
};
use crate::generation::drive::{Named as StreamEvent, Render};
use crate::generation::{fresh_id, unix_now, CalledTool, Ending, Finish};

/// Builds one response.
pub struct Answer {
    /// The response so far.
    pub response: ResponseObject,
    /// The tools the client declared, to give calls their item type and namespace back.
    declared: std::collections::HashMap<String, DeclaredTool>,
    /// Whether to produce stream events (a plain answer only needs the items).
    streaming: bool,
    /// The message being written: its output index, id and text.
    open_text: Option<(usize, String, String)>,
    sequence: u64,
    parallel_tool_calls: bool,
}

impl Answer {
    /// Starts `response` (status `in_progress`, no output yet).
    pub fn new(
        response: ResponseObject,
        declared: std::collections::HashMap<String, DeclaredTool>,
        streaming: bool,
    ) -> Self {
        Self {
            parallel_tool_calls: response.parallel_tool_calls,
            response,
            declared,
            streaming,
            open_text: None,
            sequence: 0,
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn begin(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        let snapshot = json!({"response": self.response});
        self.emit(&mut events, "response.created", snapshot.clone());
        self.emit(&mut events, "response.in_progress", snapshot);
        events
    }

    /// The answer failed: `response.failed` with the error's code.
    pub fn fail(&mut self, code: &'static str, message: String) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.close_message(&mut events, "incomplete");
        self.response.status = "failed";
        self.response.error = Some(ResponseError { code, message });
        let snapshot = json!({"response": self.response});
        self.emit(&mut events, "response.failed", snapshot);
        events
    }

    fn open_message(&mut self, events: &mut Vec<StreamEvent>) -> (usize, String) {
        if let Some((index, id, _)) = &self.open_text {
            return (*index, id.clone());
        }
        let index = self.response.output.len();
        let id = fresh_id("msg", '_');
        self.open_text = Some((index, id.clone(), String::new()));
        if self.streaming {
            let item = message(&id, "in_progress", None);
            self.emit(
                events,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(
                events,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "part": OutputText::new(String::new())}),
            );
        }
        (index, id)
    }

    fn close_message(&mut self, events: &mut Vec<StreamEvent>, status: &'static str) {
        let Some((index, id, text)) = self.open_text.take() else {
            return;
        };
        let item = message(&id, status, Some(text.clone()));
        if self.streaming {
            self.emit(
                events,
                "response.output_text.done",
                json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
            );
            self.emit(
                events,
                "response.content_part.done",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                       "part": OutputText::new(text)}),
            );
            self.emit(
                events,
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            );
        }
        self.response.output.push(item);
    }

    fn call(&mut self, events: &mut Vec<StreamEvent>, call: CalledTool) {
        let index = self.response.output.len();
        let declared = self.declared.get(&call.name).cloned();
        let (kind, name, namespace) = match declared {
            Some(d) => (d.kind, d.name, d.namespace),
            // A name the client did not declare: the model made it up; say what it called.
            None => (ToolKind::Function, call.name.clone(), None),
        };
        let call_id = fresh_id("call", '_');
        let (pending, done, delta_event, done_event, payload) = match kind {
            ToolKind::Function => {
                let item = |arguments: String, status| OutputItem::FunctionCall {
                    id: fresh_id("fc", '_'),
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments,
                    status,
                    namespace: namespace.clone(),
                };
                let mut done = item(call.arguments.clone(), "completed");
                let mut pending = item(String::new(), "in_progress");
                same_id(&mut pending, &mut done);
                (
                    pending,
                    done,
                    "response.function_call_arguments.delta",
                    "response.function_call_arguments.done",
                    ("arguments", call.arguments),
                )
            }
            ToolKind::Custom => {
                let input = custom_input(&call.arguments);
                let item = |input: String, status| OutputItem::CustomToolCall {
                    id: fresh_id("ctc", '_'),
                    call_id: call_id.clone(),
                    name: name.clone(),
                    input,
                    status,
                    namespace: namespace.clone(),
                };
                let mut done = item(input.clone(), "completed");
                let mut pending = item(String::new(), "in_progress");
                same_id(&mut pending, &mut done);
                (
                    pending,
                    done,
                    "response.custom_tool_call_input.delta",
                    "response.custom_tool_call_input.done",
                    ("input", input),
                )
            }
        };
        if self.streaming {
            let item_id = item_id(&done);
            self.emit(
                events,
                "response.output_item.added",
                json!({"output_index": index, "item": pending}),
            );
            self.emit(
                events,
                delta_event,
                json!({"item_id": item_id, "output_index": index, "delta": payload.1}),
            );
            let mut finished = json!({"item_id": item_id, "output_index": index});
            finished[payload.0] = Value::String(payload.1);
            if kind == ToolKind::Function {
                finished["name"] = Value::String(name);
            }
            self.emit(events, done_event, finished);
            self.emit(
                events,
                "response.output_item.done",
                json!({"output_index": index, "item": done}),
            );
        }
        self.response.output.push(done);
    }

    fn emit(&mut self, events: &mut Vec<StreamEvent>, name: &'static str, mut fields: Value) {
        if !self.streaming {
            return;
        }
        fields["type"] = Value::String(name.into());
        fields["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        events.push((name, fields));
    }
}

impl Render for Answer {
    /// More text.
    fn text(&mut self, delta: &str) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        let (index, id) = self.open_message(&mut events);
        self.emit(
            &mut events,
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
        );
        if let Some((_, _, text)) = self.open_text.as_mut() {
            text.push_str(delta);
        }
        events
    }

    /// Tool calls, each its own output item.
    fn calls(&mut self, calls: Vec<CalledTool>) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        self.close_message(&mut events, "completed");
        for call in calls {
            let already_called = self
                .response
                .output
                .iter()
                .any(|i| !matches!(i, OutputItem::Message { .. }));
            if !self.parallel_tool_calls && already_called {
                tracing::debug!(tool = %call.name, "extra tool call dropped: parallel_tool_calls is false");
                continue;
            }
            self.call(&mut events, call);
        }
        events
    }

    /// The end: closes what is open, sets the status and usage, and gives the terminal event.
    fn end(&mut self, ending: &Ending) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        let incomplete = ending.finish == Finish::Length;
        let item_status = if incomplete {
            "incomplete"
        } else {
            "completed"
        };
        if self.response.output.is_empty() && self.open_text.is_none() {
            // An empty answer is still a message, as OpenAI's.
            self.open_message(&mut events);
        }
        self.close_message(&mut events, item_status);
        self.response.usage = Some(ResponseUsage::new(
            ending.prompt_tokens,
            ending.completion_tokens,
        ));
        self.response.completed_at = Some(unix_now());
        let name = if incomplete {
            self.response.status = "incomplete";
            self.response.incomplete_details = Some(IncompleteDetails {
                reason: "max_output_tokens",
            });
            "response.incomplete"
        } else {
            self.response.status = "completed";
            "response.completed"
        };
        let snapshot = json!({"response": self.response});
        self.emit(&mut events, name, snapshot);
        events
    }
}

fn message(id: &str, status: &'static str, text: Option<String>) -> OutputItem {
    OutputItem::Message {
        id: id.to_string(),
        status,
        role: "assistant",
        content: text.map(OutputText::new).into_iter().collect(),
    }
}

/// A custom tool's input: the `input` argument of the function it was offered as, or, when
/// the model wrote something else, its arguments as they are.
fn custom_input(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .and_then(|v| v.get("input").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| arguments.to_string())
}

fn item_id(item: &OutputItem) -> String {
    match item {
        OutputItem::Message { id, .. }
        | OutputItem::FunctionCall { id, .. }
        | OutputItem::CustomToolCall { id, .. } => id.clone(),
    }
}

/// Gives the pending copy of an item the finished one's id.
fn same_id(pending: &mut OutputItem, done: &mut OutputItem) {
    let id = item_id(done);
    match pending {
        OutputItem::Message { id: p, .. }
        | OutputItem::FunctionCall { id: p, .. }
        | OutputItem::CustomToolCall { id: p, .. } => *p = id,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::generation::drive::Render;

    fn response() -> ResponseObject {
        super::super::handler::new_response_object_for_tests()
    }

    fn names(events: &[StreamEvent]) -> Vec<&'static str> {
        events.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn a_streamed_text_answer_has_openai_s_event_order_and_sequence_numbers() {
        let mut answer = Answer::new(response(), HashMap::new(), true);
        let mut events = answer.begin();
        events.extend(answer.text("Hel"));
        events.extend(answer.text("lo"));
        events.extend(answer.end(&Ending {
            finish: Finish::Stop,
            prompt_tokens: 5,
            completion_tokens: 2,
        }));
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let numbers: Vec<u64> = events
            .iter()
            .map(|(_, e)| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, (0..10).collect::<Vec<_>>());
        let done = &events[9].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["total_tokens"], 7);
    }

    #[test]
    fn calls_come_back_as_the_item_the_client_declared() {
        let declared = HashMap::from([
            (
                "apply_patch".to_string(),
                DeclaredTool {
                    kind: ToolKind::Custom,
                    name: "apply_patch".into(),
                    namespace: None,
                },
            ),
            (
                "agents.spawn".to_string(),
                DeclaredTool {
                    kind: ToolKind::Function,
                    name: "spawn".into(),
                    namespace: Some("agents".into()),
                },
            ),
        ]);
        let mut answer = Answer::new(response(), declared, true);
        let calls = |name: &str, arguments: &str| CalledTool {
            id: "x".into(),
            name: name.into(),
            arguments: arguments.into(),
        };
        let events = answer.calls(vec![
            calls("apply_patch", r#"{"input":"*** Begin Patch"}"#),
            calls("agents.spawn", r#"{"task":"t"}"#),
        ]);
        assert!(names(&events).contains(&"response.custom_tool_call_input.done"));
        assert!(names(&events).contains(&"response.function_call_arguments.done"));
        let output = serde_json::to_value(&answer.response.output).unwrap();
        assert_eq!(output[0]["type"], "custom_tool_call");
        assert_eq!(output[0]["input"], "*** Begin Patch");
        assert_eq!(output[1]["name"], "spawn");
        assert_eq!(output[1]["namespace"], "agents");
        let added = events
            .iter()
            .find(|(n, _)| *n == "response.output_item.added")
            .unwrap();
        let done = events
            .iter()
            .find(|(n, _)| *n == "response.output_item.done")
            .unwrap();
        assert_eq!(added.1["item"]["id"], done.1["item"]["id"]);
    }

    #[test]
    fn a_length_ending_is_incomplete_and_a_failure_is_terminal() {
        let mut answer = Answer::new(response(), HashMap::new(), false);
        assert!(
            answer.text("partial").is_empty(),
            "no events without a stream"
        );
        answer.end(&Ending {
            finish: Finish::Length,
            prompt_tokens: 1,
            completion_tokens: 4,
        });
        assert_eq!(answer.response.status, "incomplete");
        assert!(answer.response.incomplete_details.is_some());
        let mut failing = Answer::new(response(), HashMap::new(), true);
        let events = failing.fail("context_length_exceeded", "too long".into());
        assert_eq!(names(&events), ["response.failed"]);
        assert_eq!(
            events[0].1["response"]["error"]["code"],
            "context_length_exceeded"
        );
    }
}
