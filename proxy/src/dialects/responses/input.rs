//! A Responses request's `input` items read as turns, and its `text.format`.
//!
//! Items a local model cannot read (`reasoning`, `web_search_call`, `local_shell_call`...) are
//! skipped: agents leave them in their conversations, and they must not fail the request.

use serde_json::{json, Value};

use super::tools::offered_name;
use super::wire::{Input, TextFormat, TextOptions};
use crate::dialects::str_field as string;
use crate::generation::{CallRecord, Speaker, Turn};
use crate::{Error, Result};

/// Reads `text.format` into the schema the answer must match.
pub fn text_format(text: Option<&TextOptions>) -> Result<Option<Value>> {
    Ok(match text.and_then(|t| t.format.as_ref()) {
        None | Some(TextFormat::Text) => None,
        Some(TextFormat::JsonObject) => Some(json!({"type": "object"})),
        Some(TextFormat::JsonSchema { schema, .. }) => match schema {
            None => Some(json!({"type": "object"})),
            Some(schema @ Value::Object(_)) => Some(schema.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    "text.format.schema",
                    "`schema` must be a JSON schema object",
                ))
            }
        },
    })
}

/// Reads `input` into turns. Consecutive calls become one assistant turn (with the text
/// before them), as chat templates expect.
pub fn input_turns(input: &Input) -> Result<Vec<Turn>> {
    let items = match input {
        Input::Text(text) => return Ok(vec![Turn::text(Speaker::User, text.clone())]),
        Input::Items(items) => items,
    };
    let mut turns: Vec<Turn> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        if !item.is_object() {
            return Err(Error::invalid(path, "an input item must be an object"));
        }
        // A message may leave out its type (the SDKs' "easy" message).
        let kind = match item.get("type") {
            None if item.get("role").is_some() => "message",
            _ => kind_of(item, &path)?,
        };
        match kind {
            "message" => turns.push(message_turn(item, &path)?),
            "function_call" | "custom_tool_call" => {
                let call = call_record(item, kind, &path)?;
                match turns.last_mut() {
                    Some(last) if last.speaker == Speaker::Assistant => last.tool_calls.push(call),
                    _ => turns.push(Turn::calls("", vec![call])),
                }
            }
            "function_call_output" | "custom_tool_call_output" => {
                let id = string(item, "call_id", &path)?;
                let output = item.get("output").ok_or_else(|| {
                    Error::invalid(format!("{path}.output"), "a call's output needs `output`")
                })?;
                turns.push(Turn::tool_result(
                    id,
                    content_text(output, &format!("{path}.output"))?,
                ));
            }
            "item_reference" => {
                return Err(Error::invalid(
                    format!("{path}.type"),
                    "`item_reference` items are not supported; send the items themselves, or \
                     `previous_response_id`",
                ))
            }
            skipped => {
                tracing::debug!(
                    item = skipped,
                    "input item skipped: nothing a local model reads"
                );
            }
        }
    }
    Ok(turns)
}

fn message_turn(item: &Value, path: &str) -> Result<Turn> {
    let speaker = match string(item, "role", path)? {
        "user" => Speaker::User,
        "assistant" => Speaker::Assistant,
        "system" | "developer" => Speaker::System,
        other => {
            return Err(Error::invalid(
                format!("{path}.role"),
                format!("unknown role `{other}`; expected user, assistant, system or developer"),
            ))
        }
    };
    let content = item
        .get("content")
        .ok_or_else(|| Error::invalid(format!("{path}.content"), "a message needs `content`"))?;
    Ok(Turn::text(
        speaker,
        content_text(content, &format!("{path}.content"))?,
    ))
}

fn call_record(item: &Value, kind: &str, path: &str) -> Result<CallRecord> {
    let id = string(item, "call_id", path)?.to_string();
    let namespace = item.get("namespace").and_then(Value::as_str);
    let name = offered_name(namespace, string(item, "name", path)?);
    let arguments = if kind == "custom_tool_call" {
        json!({"input": string(item, "input", path)?}).to_string()
    } else {
        string(item, "arguments", path)?.to_string()
    };
    Ok(CallRecord {
        id,
        name,
        arguments,
    })
}

/// The text of a message's content: a string, or parts of text (`input_text`, `output_text`,
/// `text`, `refusal`). Images, files and audio are refused: porten serves text models.
fn content_text(content: &Value, path: &str) -> Result<String> {
    let parts = match content {
        Value::String(text) => return Ok(text.clone()),
        Value::Array(parts) => parts,
        _ => {
            return Err(Error::invalid(
                path,
                "content must be a string or a list of parts",
            ))
        }
    };
    let mut text = String::new();
    for (p, part) in parts.iter().enumerate() {
        let part_path = format!("{path}[{p}]");
        match kind_of(part, &part_path)? {
            "input_text" | "output_text" | "text" => {
                text.push_str(string(part, "text", &part_path)?)
            }
            "refusal" => text.push_str(string(part, "refusal", &part_path)?),
            other => {
                return Err(Error::invalid(
                    format!("{part_path}.type"),
                    format!(
                    "content parts of type `{other}` are not supported by this model; only text is"
                ),
                ))
            }
        }
    }
    Ok(text)
}

pub(super) fn kind_of<'a>(value: &'a Value, path: &str) -> Result<&'a str> {
    string(value, "type", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(value: Value) -> Input {
        Input::Items(value.as_array().unwrap().clone())
    }

    #[test]
    fn a_tool_round_trip_becomes_an_assistant_call_and_a_tool_result() {
        let turns = input_turns(&items(json!([
            {"role": "developer", "content": "be brief"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "web_search_call", "status": "completed"}
        ])))
        .unwrap();
        assert_eq!(turns.len(), 4, "{turns:?}");
        assert_eq!(turns[0].speaker, Speaker::System);
        assert_eq!(turns[2].tool_calls.len(), 2);
        assert_eq!(turns[2].tool_calls[1].arguments, r#"{"input":"*** Begin"}"#);
        assert_eq!(turns[3], Turn::tool_result("call_1", "sunny"));
    }

    #[test]
    fn images_and_bad_items_are_refused_with_their_place() {
        let error = input_turns(&items(json!([
            {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}
        ])))
        .unwrap_err();
        assert!(
            matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == "input[0].content[0].type"),
            "{error:?}"
        );
        let error =
            input_turns(&items(json!([{"type": "function_call", "name": "f"}]))).unwrap_err();
        assert!(error.to_string().contains("call_id"), "{error}");
        let error = input_turns(&items(json!([{"role": "wizard", "content": "x"}]))).unwrap_err();
        assert!(
            matches!(error, Error::InvalidRequest { param: Some(ref p), .. } if p == "input[0].role")
        );
    }
}
