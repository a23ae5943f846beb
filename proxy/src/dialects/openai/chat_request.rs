//! An OpenAI chat request as a [`Prompt`]: messages as turns, content parts joined (images
//! refused), tools and `tool_choice` checked against each other, `response_format` as a schema.

use serde_json::{json, Value};

use super::wire::{
    ChatCompletionRequest, ChatMessage, MessageContent, ResponseFormat, Role, ToolChoiceParam,
    ToolDefinition,
};
use crate::engine::SamplingRequest;
use crate::generation::{CallRecord, Prompt, Speaker, ToolSpec, ToolUse, Turn};
use crate::{Error, Result};

/// A validated chat request.
pub struct ChatAsk {
    /// What to continue, and how.
    pub prompt: Prompt,
    /// Answer as server-sent events.
    pub streaming: bool,
    /// Send a usage chunk at the end of the stream.
    pub include_usage: bool,
}

/// Validates `req` and builds its prompt.
pub fn chat_prompt(req: ChatCompletionRequest) -> Result<ChatAsk> {
    if req.messages.is_empty() {
        return Err(Error::invalid(
            "messages",
            "`messages` must hold at least one message",
        ));
    }
    let streaming = req.stream.unwrap_or(false);
    let include_usage = streaming
        && req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    let logprobs = req.logprobs.unwrap_or(false);
    if req.top_logprobs.is_some() && !logprobs {
        return Err(Error::invalid(
            "top_logprobs",
            "`top_logprobs` needs `logprobs: true`",
        ));
    }
    let turns = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| turn(i, m))
        .collect::<Result<Vec<_>>>()?;
    let tools = req
        .tools
        .as_deref()
        .map(convert_tools)
        .transpose()?
        .unwrap_or_default();
    let tool_use = convert_tool_choice(req.tool_choice.as_ref(), req.tools.is_some(), &tools)?;
    let format = convert_response_format(req.response_format.as_ref())?;
    let max_tokens = match (req.max_completion_tokens, req.max_tokens) {
        (Some(v), _) => Some((v, "max_completion_tokens")),
        (None, Some(v)) => Some((v, "max_tokens")),
        (None, None) => None,
    };
    let sampling = SamplingRequest {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        min_p: req.min_p,
        max_tokens,
        stop: req.stop.map(|s| (s.into_vec(), "stop")),
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        repetition_penalty: req.repetition_penalty,
        logit_bias: req.logit_bias,
        n: req.n,
        top_logprobs: logprobs.then_some(req.top_logprobs.unwrap_or(0)),
    };
    Ok(ChatAsk {
        prompt: Prompt {
            turns,
            tools,
            tool_use,
            format,
            sampling,
            logprobs,
            enable_thinking: None,
            raw: None,
        },
        streaming,
        include_usage,
    })
}

fn turn(index: usize, msg: &ChatMessage) -> Result<Turn> {
    let speaker = match msg.role {
        Role::System | Role::Developer => Speaker::System,
        Role::User => Speaker::User,
        Role::Assistant => Speaker::Assistant,
        Role::Tool => Speaker::Tool,
    };
    let text = match &msg.content {
        None => String::new(),
        Some(MessageContent::Text(t)) => t.clone(),
        Some(MessageContent::Parts(parts)) => {
            let mut text = String::new();
            for (p, part) in parts.iter().enumerate() {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(t)) => text.push_str(t),
                    ("text", None) => {
                        return Err(Error::invalid(
                            format!("messages[{index}].content[{p}].text"),
                            "a `text` content part needs a `text` field",
                        ))
                    }
                    (other, _) => {
                        return Err(Error::invalid(
                            format!("messages[{index}].content[{p}].type"),
                            format!("content parts of type `{other}` are not supported by this model; only `text` is"),
                        ))
                    }
                }
            }
            text
        }
    };
    if msg.content.is_none() && msg.tool_calls.is_none() && msg.role != Role::Assistant {
        return Err(Error::invalid(
            format!("messages[{index}].content"),
            format!("a `{}` message needs `content`", role_name(msg.role)),
        ));
    }
    let tool_calls = msg
        .tool_calls
        .iter()
        .flatten()
        .map(|c| CallRecord {
            id: c.id.clone(),
            name: c.function.name.clone(),
            arguments: c.function.arguments.clone(),
        })
        .collect();
    Ok(Turn {
        speaker,
        text,
        name: msg.name.clone(),
        tool_calls,
        tool_call_id: msg.tool_call_id.clone(),
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn convert_tools(tools: &[ToolDefinition]) -> Result<Vec<ToolSpec>> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(Error::invalid(
                    format!("tools[{i}].type"),
                    format!("tool type `{}` is not supported; use `function`", t.kind),
                ));
            }
            if t.function.name.is_empty() {
                return Err(Error::invalid(
                    format!("tools[{i}].function.name"),
                    "a function needs a name",
                ));
            }
            let parameters = match &t.function.parameters {
                None | Some(Value::Null) => None,
                Some(Value::Object(o)) => Some(o.clone()),
                Some(_) => {
                    return Err(Error::invalid(
                        format!("tools[{i}].function.parameters"),
                        "`parameters` must be a JSON schema object",
                    ))
                }
            };
            Ok(ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                parameters,
            })
        })
        .collect()
}

fn convert_tool_choice(
    choice: Option<&ToolChoiceParam>,
    has_tools: bool,
    tools: &[ToolSpec],
) -> Result<ToolUse> {
    let Some(choice) = choice else {
        return Ok(ToolUse::Auto);
    };
    match choice {
        ToolChoiceParam::Mode(m) if m == "none" => Ok(ToolUse::None),
        ToolChoiceParam::Mode(m) if m == "auto" || m == "required" => {
            if !has_tools {
                return Err(Error::invalid(
                    "tool_choice",
                    format!("`tool_choice: {m}` needs `tools`"),
                ));
            }
            Ok(if m == "auto" {
                ToolUse::Auto
            } else {
                ToolUse::Required
            })
        }
        ToolChoiceParam::Mode(m) => Err(Error::invalid(
            "tool_choice",
            format!("`tool_choice` must be none, auto, required or a named function; got `{m}`"),
        )),
        ToolChoiceParam::Named(named) => {
            if !tools.iter().any(|t| t.name == named.function.name) {
                return Err(Error::invalid(
                    "tool_choice",
                    format!(
                        "`tool_choice` names `{}`, which is not among `tools`",
                        named.function.name
                    ),
                ));
            }
            Ok(ToolUse::Named(named.function.name.clone()))
        }
    }
}

fn convert_response_format(format: Option<&ResponseFormat>) -> Result<Option<Value>> {
    Ok(match format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
            None => Some(json!({"type": "object"})),
            Some(schema @ Value::Object(_)) => Some(schema.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    "response_format.json_schema.schema",
                    "`schema` must be a JSON schema object",
                ))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn developer_role_is_a_system_message_and_parts_are_joined() {
        let ask = chat_prompt(request(json!({"model": "m", "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
        ]})))
        .unwrap();
        assert_eq!(ask.prompt.turns[0].speaker, Speaker::System);
        assert_eq!(ask.prompt.turns[1].text, "hi there");
    }

    #[test]
    fn image_parts_are_refused_with_their_path() {
        let err = chat_prompt(request(json!({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
        ]})))
        .err()
        .unwrap();
        assert!(
            matches!(err, Error::InvalidRequest { param: Some(ref p), .. } if p == "messages[0].content[0].type")
        );
    }

    #[test]
    fn named_tool_choice_must_name_a_tool() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
        let err = chat_prompt(request(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        ))
        .err()
        .unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
        let ask = chat_prompt(request(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        ))
        .unwrap();
        assert_eq!(ask.prompt.tool_use, ToolUse::Named("get_weather".into()));
        let ask = chat_prompt(request(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": "required"}),
        ))
        .unwrap();
        assert_eq!(ask.prompt.tool_use, ToolUse::Required);
    }

    #[test]
    fn json_object_format_constrains_to_an_object_schema() {
        let ask = chat_prompt(request(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"}}),
        ))
        .unwrap();
        assert_eq!(ask.prompt.format, Some(json!({"type": "object"})));
    }

    #[test]
    fn usage_chunk_only_when_streaming_and_asked() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "stream_options": {"include_usage": true}});
        assert!(!chat_prompt(request(base.clone())).unwrap().include_usage);
        let mut streaming = base;
        streaming["stream"] = json!(true);
        assert!(chat_prompt(request(streaming)).unwrap().include_usage);
    }
}
