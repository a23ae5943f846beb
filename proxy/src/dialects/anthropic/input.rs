//! An Anthropic request read into porten's [`Prompt`]: `system` and `messages` as turns
//! (`tool_use` blocks as the assistant's calls, `tool_result` blocks as tool turns, `thinking`
//! blocks dropped: the model does not re-read its thoughts), tools with their `input_schema`,
//! `tool_choice`, and sampling. Stop sequences are matched by porten, to report which one
//! ended the answer.

use serde_json::Value;

use super::wire::MessagesRequest;
use crate::dialects::str_field as string;
use crate::engine::SamplingRequest;
use crate::generation::{CallRecord, Prompt, Speaker, ToolSpec, ToolUse, Turn};
use crate::{Error, Result};

/// A request read: the prompt, and the stop sequences porten watches for.
pub struct Read {
    /// What to continue.
    pub prompt: Prompt,
    /// `stop_sequences`.
    pub stops: Vec<String>,
}

/// Reads `request`. `count_only` (for `count_tokens`) does not ask for `max_tokens`.
pub fn read(request: &MessagesRequest, count_only: bool) -> Result<Read> {
    let max_tokens = match request.max_tokens {
        Some(0) => {
            return Err(Error::invalid(
                "max_tokens",
                "`max_tokens` must be at least 1",
            ))
        }
        Some(n) => Some((n, "max_tokens")),
        None if count_only => None,
        None => return Err(Error::invalid("max_tokens", "missing field `max_tokens`")),
    };
    if let Some(t) = request.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(Error::invalid(
            "temperature",
            format!("`temperature` must be between 0 and 1; got {t}"),
        ));
    }
    if request.messages.is_empty() {
        return Err(Error::invalid(
            "messages",
            "`messages` must hold at least one message",
        ));
    }
    let mut system = Vec::new();
    if let Some(text) = &request.system {
        system.push(text_of(text, "system")?);
    }
    let mut turns = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        message_turns(message, &format!("messages[{i}]"), &mut turns)?;
    }
    // System text inside `messages` (Claude Code sends its environment so, after the user's
    // question) joins the system prompt: local chat templates expect one system message,
    // first, and a small model answers a system message that comes last instead of the user.
    system.extend(
        turns
            .iter()
            .filter(|t| t.speaker == Speaker::System)
            .map(|t| t.text.clone()),
    );
    turns.retain(|t| t.speaker != Speaker::System);
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        turns.insert(0, Turn::text(Speaker::System, system.join("\n\n")));
    }
    let tools = request
        .tools
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, t)| tool(t, &format!("tools[{i}]")).transpose())
        .collect::<Result<Vec<_>>>()?;
    let tool_use = tool_choice(request.tool_choice.as_ref(), &tools)?;
    let stops = request.stop_sequences.clone().unwrap_or_default();
    if stops.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "stop_sequences",
            "`stop_sequences` must not hold empty strings",
        ));
    }
    let sampling = SamplingRequest {
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        max_tokens,
        ..SamplingRequest::default()
    };
    let enable_thinking = match request
        .thinking
        .as_ref()
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
    {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => None,
    };
    Ok(Read {
        prompt: Prompt {
            turns,
            tools,
            tool_use,
            format: None,
            sampling,
            logprobs: false,
            enable_thinking,
            raw: None,
        },
        stops,
    })
}

/// One message's turns. A user message's `tool_result` blocks come first, as tool turns (they
/// answer the calls before them), then its text; an assistant's text and calls are one turn.
fn message_turns(message: &Value, path: &str, turns: &mut Vec<Turn>) -> Result<()> {
    let role = match message.get("role") {
        Some(Value::String(role)) => role.as_str(),
        _ => {
            return Err(Error::invalid(
                format!("{path}.role"),
                "a message needs a `role`: user or assistant",
            ))
        }
    };
    let speaker = match role {
        "user" => Speaker::User,
        "assistant" => Speaker::Assistant,
        "system" => Speaker::System,
        other => {
            return Err(Error::invalid(
                format!("{path}.role"),
                format!("unknown role `{other}`; expected user or assistant"),
            ))
        }
    };
    let content_path = format!("{path}.content");
    let blocks = match message.get("content") {
        Some(Value::String(text)) => {
            turns.push(Turn::text(speaker, text.clone()));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(Error::invalid(
                content_path,
                "`content` must be a string or a list of blocks",
            ))
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let block_path = format!("{content_path}[{b}]");
        match string(block, "type", &block_path)? {
            "text" => text.push_str(string(block, "text", &block_path)?),
            "tool_use" if speaker == Speaker::Assistant => {
                let input = block
                    .get("input")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                calls.push(CallRecord {
                    id: string(block, "id", &block_path)?.to_string(),
                    name: string(block, "name", &block_path)?.to_string(),
                    arguments: input.to_string(),
                });
            }
            "tool_result" if speaker == Speaker::User => {
                let id = string(block, "tool_use_id", &block_path)?;
                let mut result = match block.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(content) => text_of(content, &format!("{block_path}.content"))?,
                };
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    result = format!("Error: {result}");
                }
                turns.push(Turn::tool_result(id, result));
            }
            "thinking" | "redacted_thinking" => {}
            kind @ ("image" | "document" | "search_result" | "container_upload") => {
                return Err(Error::invalid(
                    format!("{block_path}.type"),
                    format!("`{kind}` blocks are not supported: porten serves text models"),
                ))
            }
            other => {
                tracing::debug!(
                    block = other,
                    "content block skipped: nothing a local model reads"
                );
            }
        }
    }
    if !text.is_empty() || !calls.is_empty() || blocks.is_empty() {
        turns.push(Turn {
            tool_calls: calls,
            ..Turn::text(speaker, text)
        });
    }
    Ok(())
}

/// A tool with an `input_schema`; Anthropic's server tools (`web_search_...`, `bash_...`,
/// `text_editor_...`), which a local model cannot run, are left out with a log line.
fn tool(tool: &Value, path: &str) -> Result<Option<ToolSpec>> {
    let Some(schema) = tool.get("input_schema") else {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        tracing::info!(
            tool = kind,
            "server tool `{kind}` is not offered to the model"
        );
        return Ok(None);
    };
    let Value::Object(schema) = schema else {
        return Err(Error::invalid(
            format!("{path}.input_schema"),
            "`input_schema` must be a JSON schema object",
        ));
    };
    let name = string(tool, "name", path)?;
    if name.is_empty() {
        return Err(Error::invalid(
            format!("{path}.name"),
            "a tool needs a name",
        ));
    }
    Ok(Some(ToolSpec {
        name: name.to_string(),
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        parameters: Some(schema.clone()),
    }))
}

fn tool_choice(choice: Option<&Value>, tools: &[ToolSpec]) -> Result<ToolUse> {
    let Some(choice) = choice else {
        return Ok(ToolUse::Auto);
    };
    let use_ = match string(choice, "type", "tool_choice")? {
        "auto" => ToolUse::Auto,
        "none" => ToolUse::None,
        "any" => ToolUse::Required,
        "tool" => {
            let name = string(choice, "name", "tool_choice")?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(Error::invalid(
                    "tool_choice.name",
                    format!("`tool_choice` names `{name}`, which is not among `tools`"),
                ));
            }
            ToolUse::Named(name.to_string())
        }
        other => {
            return Err(Error::invalid(
                "tool_choice.type",
                format!("`tool_choice.type` must be auto, any, tool or none; got `{other}`"),
            ))
        }
    };
    if matches!(use_, ToolUse::Required) && tools.is_empty() {
        return Err(Error::invalid(
            "tool_choice",
            "`tool_choice: any` needs `tools`",
        ));
    }
    Ok(use_)
}

/// The text of a string or a list of `text` blocks (images inside are refused).
fn text_of(value: &Value, path: &str) -> Result<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            for (b, block) in blocks.iter().enumerate() {
                let block_path = format!("{path}[{b}]");
                match string(block, "type", &block_path)? {
                    "text" => texts.push(string(block, "text", &block_path)?),
                    other => {
                        return Err(Error::invalid(
                            format!("{block_path}.type"),
                            format!("`{other}` blocks are not supported here; only `text` is"),
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(Error::invalid(
            path,
            "expected a string or a list of text blocks",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(body: Value) -> MessagesRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn claude_code_s_request_reads_with_one_system_prompt_first() {
        let read = read(
            &request(json!({
                "model": "m", "max_tokens": 32000,
                "system": [{"type": "text", "text": "billing"}, {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
                "messages": [
                    {"role": "user", "content": "Say hi"},
                    {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}
                ],
                "tools": [], "thinking": {"type": "adaptive"},
                "context_management": {"edits": []}, "output_config": {"effort": "high"}
            })),
            false,
        )
        .unwrap();
        let turns = &read.prompt.turns;
        assert_eq!(turns.len(), 2, "{turns:?}");
        assert_eq!(
            (turns[0].speaker, turns[0].text.as_str()),
            (Speaker::System, "billing\nbe brief\n\n# Environment")
        );
        assert_eq!(
            (turns[1].speaker, turns[1].text.as_str()),
            (Speaker::User, "Say hi")
        );
        assert_eq!(read.prompt.enable_thinking, None);
    }

    #[test]
    fn a_tool_round_trip_keeps_calls_and_results_paired() {
        let read = read(
            &request(json!({
                "model": "m", "max_tokens": 10,
                "tools": [{"name": "get_weather", "input_schema": {"type": "object"}},
                          {"type": "web_search_20250305", "name": "web_search"}],
                "tool_choice": {"type": "tool", "name": "get_weather"},
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "s"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                        {"type": "text", "text": "thanks"}]}
                ]
            })),
            false,
        )
        .unwrap();
        let turns = &read.prompt.turns;
        assert_eq!(turns[1].tool_calls[0].arguments, r#"{"city":"Oslo"}"#);
        assert_eq!(turns[2], Turn::tool_result("toolu_1", "sunny"));
        assert_eq!(turns[3].text, "thanks");
        assert_eq!(read.prompt.tools.len(), 1, "the server tool is left out");
        assert_eq!(read.prompt.tool_use, ToolUse::Named("get_weather".into()));
    }

    #[test]
    fn max_tokens_is_required_except_to_count_and_images_are_refused() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let error = read(&request(body.clone()), false).err().unwrap();
        assert!(
            matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == "max_tokens")
        );
        assert!(read(&request(body), true).is_ok());
        let image = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}]}]});
        let error = read(&request(image), false).err().unwrap();
        assert!(
            matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == "messages[0].content[0].type")
        );
        let hot = json!({"model": "m", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]});
        assert!(read(&request(hot), false).is_err());
    }
}
