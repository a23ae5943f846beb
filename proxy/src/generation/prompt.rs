//! What every dialect's chat request becomes before the engine sees it: a conversation of
//! turns, the tools offered, how they may be used, an output format, and sampling. One place
//! turns it into a mistral.rs job, so tools, forced tool calls and structured output behave the
//! same whichever API the client speaks.

use std::collections::HashMap;

use either::Either;
use indexmap::IndexMap;
use mistralrs::{Constraint, ModelGenerationDefaults, RequestMessage};
use serde_json::{json, Map, Value};

use crate::engine::{EngineJob, SamplingRequest, TemplateMessage};
use crate::Result;

/// Who wrote a turn, as chat templates name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// Instructions (OpenAI's `system` and `developer`, Anthropic's `system`).
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Speaker {
    fn role(self) -> &'static str {
        match self {
            Speaker::System => "system",
            Speaker::User => "user",
            Speaker::Assistant => "assistant",
            Speaker::Tool => "tool",
        }
    }
}

/// A call the assistant made earlier in the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// The call's id, which the tool's result names.
    pub id: String,
    /// The tool called (as offered to the model).
    pub name: String,
    /// Its arguments, a JSON object as text.
    pub arguments: String,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Who wrote it.
    pub speaker: Speaker,
    /// Its text.
    pub text: String,
    /// A participant name, when the client gave one.
    pub name: Option<String>,
    /// Calls the assistant made in this turn.
    pub tool_calls: Vec<CallRecord>,
    /// For a tool's result: the call it answers.
    pub tool_call_id: Option<String>,
}

impl Turn {
    /// A turn of plain text.
    pub fn text(speaker: Speaker, text: impl Into<String>) -> Self {
        Self {
            speaker,
            text: text.into(),
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// An assistant turn that made `calls` (after `text`, which may be empty).
    pub fn calls(text: impl Into<String>, calls: Vec<CallRecord>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::text(Speaker::Assistant, text)
        }
    }

    /// A tool's result for the call `id`.
    pub fn tool_result(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(id.into()),
            ..Self::text(Speaker::Tool, text)
        }
    }
}

/// A tool offered to the model: a function with a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Its name, as the model will call it.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// The JSON schema of its arguments (an object schema).
    pub parameters: Option<Map<String, Value>>,
}

/// How the model may use the tools.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolUse {
    /// It decides.
    #[default]
    Auto,
    /// It must answer in text: it is offered no tools.
    None,
    /// It must call one of the tools.
    Required,
    /// It must call this tool.
    Named(String),
}

/// A chat request in no dialect: what the engine is asked to continue, and how.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// The conversation so far.
    pub turns: Vec<Turn>,
    /// The tools offered.
    pub tools: Vec<ToolSpec>,
    /// How they may be used.
    pub tool_use: ToolUse,
    /// A JSON schema the answer must match (structured output), if any.
    pub format: Option<Value>,
    /// How to sample.
    pub sampling: SamplingRequest,
    /// Return log probabilities.
    pub logprobs: bool,
    /// Whether a thinking model should think (Anthropic's `thinking`); `None`: its default.
    pub enable_thinking: Option<bool>,
    /// Text to continue as it is, with no chat template (Ollama's `raw`); the turns and tools
    /// are then unused.
    pub raw: Option<String>,
}

impl Prompt {
    /// The engine job for this prompt. A forced tool call (`Required`, `Named`) is a grammar:
    /// mistral.rs 0.8 can only check after the fact that a tool was called, so porten constrains
    /// the answer to the JSON of a call to the allowed tools, which mistral.rs then reads as one.
    pub fn into_job(
        self,
        defaults: Option<&ModelGenerationDefaults>,
        streaming: bool,
    ) -> Result<EngineJob> {
        let messages = self.turns.iter().map(template_message).collect();
        let offered: Vec<mistralrs::Tool> = self.tools.iter().map(engine_tool).collect();
        let forced = match &self.tool_use {
            ToolUse::Required => Some(call_schema(self.tools.iter())),
            ToolUse::Named(name) => {
                Some(call_schema(self.tools.iter().filter(|t| &t.name == name)))
            }
            ToolUse::Auto | ToolUse::None => None,
        };
        let (tools, tool_choice) = match self.tool_use {
            ToolUse::None => (None, None),
            _ if offered.is_empty() => (None, None),
            _ => (Some(offered), Some(mistralrs::ToolChoice::Auto)),
        };
        let constraint = match (forced, self.format) {
            (Some(call), _) => Constraint::JsonSchema(compact(call)),
            (None, Some(schema)) => Constraint::JsonSchema(compact(schema)),
            (None, None) => Constraint::None,
        };
        let sampling = self.sampling.into_params(defaults)?;
        let message = match self.raw {
            Some(text) => RequestMessage::Completion {
                text,
                echo_prompt: false,
                best_of: None,
            },
            None => RequestMessage::Chat {
                messages,
                enable_thinking: self.enable_thinking,
                reasoning_effort: None,
            },
        };
        let (tools, tool_choice) = match message {
            RequestMessage::Chat { .. } => (tools, tool_choice),
            _ => (None, None),
        };
        Ok(EngineJob {
            message,
            sampling,
            constraint,
            tools,
            tool_choice,
            logprobs: self.logprobs,
            streaming,
            prompt_tokens: 0,
            sampled: Default::default(),
        })
    }
}

/// `schema`, to be written as compact JSON (`{"a": 1, "b": 2}`): llguidance otherwise allows
/// any run of whitespace between tokens, and a model decoding greedily can loop in it until
/// `max_tokens` without ever closing the object. A schema that sets its own `x-guidance`
/// options keeps them.
fn compact(mut schema: Value) -> Value {
    if let Some(object) = schema.as_object_mut() {
        object.entry("x-guidance").or_insert_with(
            || json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

/// The schema of one call to any of `tools`, in the JSON form mistral.rs reads as a call.
fn call_schema<'a>(tools: impl Iterator<Item = &'a ToolSpec>) -> Value {
    let calls: Vec<Value> = tools
        .map(|tool| {
            let arguments = tool
                .parameters
                .clone()
                .map(Value::Object)
                .unwrap_or_else(|| json!({"type": "object"}));
            json!({
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": arguments},
                "required": ["name", "arguments"],
                "additionalProperties": false
            })
        })
        .collect();
    match <[Value; 1]>::try_from(calls) {
        Ok([one]) => one,
        Err(calls) => json!({"anyOf": calls}),
    }
}

fn engine_tool(tool: &ToolSpec) -> mistralrs::Tool {
    mistralrs::Tool {
        tp: mistralrs::ToolType::Function,
        function: mistralrs::Function {
            description: tool.description.clone(),
            name: tool.name.clone(),
            parameters: tool
                .parameters
                .clone()
                .map(|p| p.into_iter().collect::<HashMap<_, _>>()),
        },
    }
}

fn template_message(turn: &Turn) -> TemplateMessage {
    let mut map = IndexMap::new();
    map.insert(
        "role".to_string(),
        Either::Left(turn.speaker.role().to_string()),
    );
    map.insert("content".to_string(), Either::Left(turn.text.clone()));
    if let Some(name) = &turn.name {
        map.insert("name".to_string(), Either::Left(name.clone()));
    }
    if let Some(id) = &turn.tool_call_id {
        map.insert("tool_call_id".to_string(), Either::Left(id.clone()));
    }
    if !turn.tool_calls.is_empty() {
        let calls = turn
            .tool_calls
            .iter()
            .map(|c| {
                IndexMap::from([
                    ("id".to_string(), Value::String(c.id.clone())),
                    ("type".to_string(), Value::String("function".into())),
                    (
                        "function".to_string(),
                        json!({"name": c.name, "arguments": c.arguments}),
                    ),
                ])
            })
            .collect();
        map.insert("tool_calls".to_string(), Either::Right(calls));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: None,
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}})
                .as_object()
                .cloned(),
        }
    }

    fn prompt(tool_use: ToolUse, tools: Vec<ToolSpec>) -> Prompt {
        Prompt {
            turns: vec![Turn::text(Speaker::User, "x")],
            tools,
            tool_use,
            ..Prompt::default()
        }
    }

    #[test]
    fn a_named_tool_is_forced_by_a_grammar_of_its_call() {
        let job = prompt(ToolUse::Named("get_weather".into()), vec![weather()])
            .into_job(None, false)
            .unwrap();
        let Constraint::JsonSchema(schema) = job.constraint else {
            panic!("no grammar")
        };
        assert_eq!(schema["properties"]["name"]["const"], "get_weather");
        assert_eq!(
            schema["properties"]["arguments"]["properties"]["city"]["type"],
            "string"
        );
        assert!(matches!(job.tool_choice, Some(mistralrs::ToolChoice::Auto)));
    }

    #[test]
    fn required_allows_a_call_to_any_tool_and_none_offers_no_tools() {
        let mut other = weather();
        other.name = "get_time".into();
        let job = prompt(ToolUse::Required, vec![weather(), other])
            .into_job(None, false)
            .unwrap();
        let Constraint::JsonSchema(schema) = job.constraint else {
            panic!("no grammar")
        };
        assert_eq!(schema["anyOf"].as_array().unwrap().len(), 2);
        let job = prompt(ToolUse::None, vec![weather()])
            .into_job(None, false)
            .unwrap();
        assert!(job.tools.is_none() && matches!(job.constraint, Constraint::None));
    }

    #[test]
    fn turns_become_template_messages_with_their_calls() {
        let mut p = prompt(ToolUse::Auto, vec![weather()]);
        p.turns.push(Turn::calls(
            "",
            vec![CallRecord {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into(),
            }],
        ));
        p.turns.push(Turn::tool_result("call_1", "sunny"));
        let job = p.into_job(None, true).unwrap();
        let RequestMessage::Chat { messages, .. } = job.message else {
            panic!("not a chat")
        };
        assert_eq!(messages[1]["role"], Either::Left("assistant".to_string()));
        let Either::Right(calls) = &messages[1]["tool_calls"] else {
            panic!("no calls")
        };
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(
            messages[2]["tool_call_id"],
            Either::Left("call_1".to_string())
        );
        assert!(job.streaming && job.tools.is_some());
    }
}
