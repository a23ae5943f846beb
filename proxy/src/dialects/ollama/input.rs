//! Ollama's requests in no dialect: messages, tools, `format`, `think` and `options` become a
//! [`Prompt`] and porten's own stop sequences, as every other dialect's do.

use serde_json::{json, Value};

use super::wire::{ChatRequest, GenerateRequest, Message, Options};
use crate::engine::SamplingRequest;
use crate::generation::{CallRecord, Prompt, Speaker, ToolSpec, ToolUse, Turn};
use crate::{Error, Result};

/// A request read: the prompt, and the stop sequences porten matches itself.
#[derive(Debug)]
pub struct Read {
    /// The prompt.
    pub prompt: Prompt,
    /// `options.stop`.
    pub stops: Vec<String>,
}

/// Reads a chat request.
pub fn read_chat(request: &ChatRequest) -> Result<Read> {
    let mut turns = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.iter().enumerate() {
        turns.push(turn(message, &format!("messages[{i}]"))?);
    }
    let tools = request
        .tools
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, tool)| match tool.kind.as_deref() {
            None | Some("function") => Ok(ToolSpec {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                parameters: tool.function.parameters.clone(),
            }),
            Some(other) => Err(Error::invalid(
                format!("tools[{i}].type"),
                format!("tool type `{other}` is not supported; use `function`"),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    read(
        turns,
        tools,
        request.format.as_ref(),
        request.options.as_ref(),
        request.think.as_ref(),
    )
}

/// Reads a templated (not `raw`) generate request: `system`, then `prompt` as the user's turn.
pub fn read_generate(request: &GenerateRequest) -> Result<Read> {
    refuse_unsupported_generate(request)?;
    let mut turns = Vec::new();
    if let Some(system) = request.system.as_ref().filter(|s| !s.is_empty()) {
        turns.push(Turn::text(Speaker::System, system.clone()));
    }
    turns.push(Turn::text(
        Speaker::User,
        request.prompt.clone().unwrap_or_default(),
    ));
    read(
        turns,
        Vec::new(),
        request.format.as_ref(),
        request.options.as_ref(),
        request.think.as_ref(),
    )
}

/// What `/api/generate` does not do here, refused by name rather than ignored.
pub fn refuse_unsupported_generate(request: &GenerateRequest) -> Result<()> {
    if request.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::invalid(
            "suffix",
            "`suffix` (fill-in-the-middle) is not supported",
        ));
    }
    if request.template.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(Error::invalid(
            "template",
            "`template` is not supported: porten renders the model's own chat template; send \
             `raw: true` with the prompt already formatted",
        ));
    }
    if request.context.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(Error::invalid(
            "context",
            "`context` is not supported (it is deprecated in Ollama too); use /api/chat with \
             the conversation's messages",
        ));
    }
    refuse_images(request.images.as_deref(), "images")
}

fn refuse_images(images: Option<&[Value]>, path: &str) -> Result<()> {
    if images.is_some_and(|i| !i.is_empty()) {
        return Err(Error::invalid(
            path,
            "images are not supported: porten serves text models",
        ));
    }
    Ok(())
}

fn read(
    turns: Vec<Turn>,
    tools: Vec<ToolSpec>,
    format: Option<&Value>,
    options: Option<&Options>,
    think: Option<&Value>,
) -> Result<Read> {
    let default_options = Options::default();
    let options = options.unwrap_or(&default_options);
    let (sampling, stops) = sampling(options)?;
    let enable_thinking = match think {
        None | Some(Value::Null) => None,
        Some(Value::Bool(on)) => Some(*on),
        // `"high"`, `"medium"`, `"low"`: mistral.rs has no levels; thinking is on.
        Some(Value::String(_)) => Some(true),
        Some(_) => {
            return Err(Error::invalid(
                "think",
                "`think` must be true, false, or \"high\", \"medium\", \"low\"",
            ))
        }
    };
    Ok(Read {
        prompt: Prompt {
            turns,
            tools,
            tool_use: ToolUse::Auto,
            format: output_format(format)?,
            sampling,
            logprobs: false,
            enable_thinking,
            raw: None,
        },
        stops,
    })
}

fn turn(message: &Message, path: &str) -> Result<Turn> {
    refuse_images(message.images.as_deref(), &format!("{path}.images"))?;
    let speaker = match message.role.as_str() {
        "system" => Speaker::System,
        "user" => Speaker::User,
        "assistant" => Speaker::Assistant,
        "tool" => Speaker::Tool,
        other => {
            return Err(Error::invalid(
                format!("{path}.role"),
                format!("unknown role `{other}`; use system, user, assistant or tool"),
            ))
        }
    };
    let mut turn = Turn::text(speaker, message.content.clone());
    if speaker == Speaker::Tool {
        turn.name = message.tool_name.clone();
    }
    if let Some(calls) = &message.tool_calls {
        turn.tool_calls = calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                let arguments = match &call.function.arguments {
                    Value::Null => "{}".to_string(),
                    Value::Object(_) => call.function.arguments.to_string(),
                    _ => {
                        return Err(Error::invalid(
                            format!("{path}.tool_calls[{i}].function.arguments"),
                            "`arguments` must be a JSON object",
                        ))
                    }
                };
                Ok(CallRecord {
                    id: format!("call_{i}"),
                    name: call.function.name.clone(),
                    arguments,
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(turn)
}

/// `format`: `"json"` is any JSON object, a schema is that schema, empty is free text.
fn output_format(format: Option<&Value>) -> Result<Option<Value>> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(json!({"type": "object"}))),
        Some(Value::Object(_)) => Ok(format.cloned()),
        Some(_) => Err(Error::invalid(
            "format",
            "`format` must be \"json\" or a JSON schema object",
        )),
    }
}

/// `options` as porten's sampling, and the stop sequences (matched by porten, not the engine).
pub fn sampling(options: &Options) -> Result<(SamplingRequest, Vec<String>)> {
    let max_tokens = match options.num_predict {
        None => None,
        Some(n) if n < 0 => None,
        Some(0) => {
            return Err(Error::invalid(
                "options.num_predict",
                "`num_predict` must be at least 1, or -1 for no limit but the context",
            ))
        }
        Some(n) => Some((n as u64, "options.num_predict")),
    };
    let top_k = match options.top_k {
        Some(k) if k < 0 => {
            return Err(Error::invalid(
                "options.top_k",
                format!("`top_k` must not be negative; got {k}"),
            ))
        }
        k => k.map(|k| k as usize),
    };
    let stops = options.stop.clone().unwrap_or_default();
    if stops.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "options.stop",
            "`stop` sequences must not be empty",
        ));
    }
    let sampling = SamplingRequest {
        temperature: options.temperature,
        top_p: options.top_p,
        top_k,
        min_p: options.min_p,
        max_tokens,
        stop: None,
        presence_penalty: options.presence_penalty,
        frequency_penalty: options.frequency_penalty,
        repetition_penalty: options.repeat_penalty,
        logit_bias: None,
        n: None,
        top_logprobs: None,
    };
    Ok((sampling, stops))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn tool_history_and_options_become_the_prompt() {
        let read = read_chat(&chat(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "sunny", "tool_name": "get_weather"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object"}}}],
            "options": {"temperature": 0, "num_predict": 9, "stop": ["\n"], "num_gpu": 99},
            "think": false
        })))
        .unwrap();
        let prompt = &read.prompt;
        assert_eq!(
            prompt.turns[1].tool_calls[0].arguments,
            r#"{"city":"Oslo"}"#
        );
        assert_eq!(prompt.turns[2].name.as_deref(), Some("get_weather"));
        assert_eq!(prompt.tools[0].name, "get_weather");
        assert_eq!(prompt.sampling.max_tokens, Some((9, "options.num_predict")));
        assert_eq!(prompt.sampling.temperature, Some(0.0));
        assert_eq!(read.stops, vec!["\n".to_string()]);
        assert_eq!(prompt.enable_thinking, Some(false));
    }

    #[test]
    fn format_json_is_any_object_and_a_schema_is_kept() {
        let read = read_chat(&chat(json!({"model": "m", "format": "json"}))).unwrap();
        assert_eq!(read.prompt.format, Some(json!({"type": "object"})));
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let read = read_chat(&chat(json!({"model": "m", "format": schema}))).unwrap();
        assert_eq!(read.prompt.format, Some(schema));
        let error = read_chat(&chat(json!({"model": "m", "format": 7}))).unwrap_err();
        assert!(matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == "format"));
    }

    #[test]
    fn unknown_roles_images_and_negative_top_k_are_refused_by_name() {
        let cases = [
            (
                json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x", "images": ["aGk="]}]}),
                "messages[0].images",
            ),
            (
                json!({"model": "m", "options": {"top_k": -1}}),
                "options.top_k",
            ),
            (
                json!({"model": "m", "options": {"num_predict": 0}}),
                "options.num_predict",
            ),
        ];
        for (body, param) in cases {
            let error = read_chat(&chat(body)).unwrap_err();
            assert!(
                matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == param),
                "{param}: {error:?}"
            );
        }
    }

    #[test]
    fn generate_puts_the_system_prompt_first_and_refuses_templates() {
        let request: GenerateRequest =
            serde_json::from_value(json!({"model": "m", "prompt": "hi", "system": "be brief"}))
                .unwrap();
        let read = read_generate(&request).unwrap();
        assert_eq!(read.prompt.turns[0].speaker, Speaker::System);
        assert_eq!(read.prompt.turns[1].text, "hi");
        let request: GenerateRequest = serde_json::from_value(
            json!({"model": "m", "prompt": "hi", "template": "{{ .Prompt }}"}),
        )
        .unwrap();
        assert!(read_generate(&request).is_err());
    }
}
