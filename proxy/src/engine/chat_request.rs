//! Turning an OpenAI chat request into a mistral.rs job: messages into the maps chat templates
//! read, tools and `tool_choice`, `response_format` into constrained decoding.

use std::collections::HashMap;

use either::Either;
use indexmap::IndexMap;
use mistralrs::{Constraint, ModelGenerationDefaults, RequestMessage};
use serde_json::{json, Value};

use super::{EngineJob, SamplingRequest};
use crate::openai::{
    ChatCompletionRequest, ChatMessage, MessageContent, ResponseFormat, Role, ToolChoiceParam,
    ToolDefinition,
};
use crate::{Error, Result};

/// A validated chat request, ready for the engine.
pub struct ChatJob {
    /// What the engine runs.
    pub engine: EngineJob,
    /// Send a usage chunk at the end of the stream.
    pub include_usage: bool,
}

/// Validates `req` and builds the engine job.
pub fn chat_job(
    req: ChatCompletionRequest,
    defaults: Option<&ModelGenerationDefaults>,
) -> Result<ChatJob> {
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
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message_map(i, m))
        .collect::<Result<Vec<_>>>()?;
    let tools = req.tools.as_deref().map(convert_tools).transpose()?;
    let tool_choice = convert_tool_choice(req.tool_choice.as_ref(), tools.as_deref())?;
    // `tool_choice: none` means the model must answer in text: offer it no tools at all.
    let tools = if matches!(tool_choice, Some(mistralrs::ToolChoice::None)) {
        None
    } else {
        tools
    };
    let constraint = convert_response_format(req.response_format.as_ref())?;
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
        stop: req.stop,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        repetition_penalty: req.repetition_penalty,
        logit_bias: req.logit_bias,
        n: req.n,
        top_logprobs: logprobs.then_some(req.top_logprobs.unwrap_or(0)),
    }
    .into_params(defaults)?;
    Ok(ChatJob {
        engine: EngineJob {
            message: RequestMessage::Chat {
                messages,
                enable_thinking: None,
                reasoning_effort: None,
            },
            sampling,
            constraint,
            tools,
            tool_choice,
            logprobs,
            streaming,
        },
        include_usage,
    })
}

type TemplateMessage = IndexMap<String, mistralrs::MessageContent>;

fn message_map(index: usize, msg: &ChatMessage) -> Result<TemplateMessage> {
    let role = match msg.role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
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
            format!("a `{role}` message needs `content`"),
        ));
    }
    let mut map = IndexMap::new();
    map.insert("role".to_string(), Either::Left(role.to_string()));
    map.insert("content".to_string(), Either::Left(text));
    if let Some(name) = &msg.name {
        map.insert("name".to_string(), Either::Left(name.clone()));
    }
    if let Some(id) = &msg.tool_call_id {
        map.insert("tool_call_id".to_string(), Either::Left(id.clone()));
    }
    if let Some(calls) = &msg.tool_calls {
        let calls = calls
            .iter()
            .map(|c| {
                IndexMap::from([
                    ("id".to_string(), Value::String(c.id.clone())),
                    ("type".to_string(), Value::String("function".into())),
                    (
                        "function".to_string(),
                        json!({"name": c.function.name, "arguments": c.function.arguments}),
                    ),
                ])
            })
            .collect();
        map.insert("tool_calls".to_string(), Either::Right(calls));
    }
    Ok(map)
}

fn convert_tools(tools: &[ToolDefinition]) -> Result<Vec<mistralrs::Tool>> {
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
                Some(Value::Object(o)) => Some(o.clone().into_iter().collect::<HashMap<_, _>>()),
                Some(_) => {
                    return Err(Error::invalid(
                        format!("tools[{i}].function.parameters"),
                        "`parameters` must be a JSON schema object",
                    ))
                }
            };
            Ok(mistralrs::Tool {
                tp: mistralrs::ToolType::Function,
                function: mistralrs::Function {
                    description: t.function.description.clone(),
                    name: t.function.name.clone(),
                    parameters,
                },
            })
        })
        .collect()
}

fn convert_tool_choice(
    choice: Option<&ToolChoiceParam>,
    tools: Option<&[mistralrs::Tool]>,
) -> Result<Option<mistralrs::ToolChoice>> {
    let Some(choice) = choice else {
        return Ok(tools.map(|_| mistralrs::ToolChoice::Auto));
    };
    match choice {
        ToolChoiceParam::Mode(m) if m == "none" => Ok(Some(mistralrs::ToolChoice::None)),
        // mistral.rs cannot force "some tool"; `required` is served as `auto` (see the README).
        ToolChoiceParam::Mode(m) if m == "auto" || m == "required" => {
            if tools.is_none() {
                return Err(Error::invalid(
                    "tool_choice",
                    format!("`tool_choice: {m}` needs `tools`"),
                ));
            }
            Ok(Some(mistralrs::ToolChoice::Auto))
        }
        ToolChoiceParam::Mode(m) => Err(Error::invalid(
            "tool_choice",
            format!("`tool_choice` must be none, auto, required or a named function; got `{m}`"),
        )),
        ToolChoiceParam::Named(named) => {
            let tool = tools
                .into_iter()
                .flatten()
                .find(|t| t.function.name == named.function.name)
                .ok_or_else(|| {
                    Error::invalid(
                        "tool_choice",
                        format!(
                            "`tool_choice` names `{}`, which is not among `tools`",
                            named.function.name
                        ),
                    )
                })?;
            Ok(Some(mistralrs::ToolChoice::Tool(tool.clone())))
        }
    }
}

fn convert_response_format(format: Option<&ResponseFormat>) -> Result<Constraint> {
    Ok(match format {
        None | Some(ResponseFormat::Text) => Constraint::None,
        Some(ResponseFormat::JsonObject) => Constraint::JsonSchema(json!({"type": "object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
            None => Constraint::JsonSchema(json!({"type": "object"})),
            Some(schema @ Value::Object(_)) => Constraint::JsonSchema(schema.clone()),
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
        let job = chat_job(
            request(json!({"model": "m", "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
            ]})),
            None,
        )
        .unwrap();
        let RequestMessage::Chat { messages, .. } = job.engine.message else {
            panic!("not a chat message")
        };
        assert_eq!(messages[0]["role"], Either::Left("system".to_string()));
        assert_eq!(messages[1]["content"], Either::Left("hi there".to_string()));
    }

    #[test]
    fn image_parts_are_refused_with_their_path() {
        let err = chat_job(
            request(json!({"model": "m", "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ]})),
            None,
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, Error::InvalidRequest { param: Some(ref p), .. } if p == "messages[0].content[0].type")
        );
    }

    #[test]
    fn named_tool_choice_must_name_a_tool() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
        let err = chat_job(
            request(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            ),
            None,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
        let job = chat_job(
            request(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})),
            None,
        )
        .unwrap();
        assert!(
            matches!(job.engine.tool_choice, Some(mistralrs::ToolChoice::Tool(ref t)) if t.function.name == "get_weather")
        );
    }

    #[test]
    fn json_object_format_constrains_to_an_object_schema() {
        let job = chat_job(
            request(
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"}}),
            ),
            None,
        )
        .unwrap();
        assert!(
            matches!(job.engine.constraint, Constraint::JsonSchema(ref s) if s == &json!({"type": "object"}))
        );
    }

    #[test]
    fn usage_chunk_only_when_streaming_and_asked() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "stream_options": {"include_usage": true}});
        assert!(!chat_job(request(base.clone()), None).unwrap().include_usage);
        let mut streaming = base;
        streaming["stream"] = json!(true);
        assert!(chat_job(request(streaming), None).unwrap().include_usage);
    }
}
