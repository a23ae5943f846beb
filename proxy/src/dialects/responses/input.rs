//! A Responses request read into porten's [`Prompt`] parts: input items as turns, tools as the
//! functions the model is offered, `tool_choice`, and `text.format`.
//!
//! What agents send that a local model cannot use does not fail the request: hosted tools
//! (`web_search`, `file_search`, `computer_use`, `local_shell`, `mcp`...) are left out with a
//! log line, and the items they leave in a conversation (`web_search_call`, `reasoning`...) are
//! skipped. A `custom` (freeform) tool is offered as a function of one string argument,
//! `input`, and its calls go back to the client as `custom_tool_call` items; the functions of
//! a `namespace` are offered as `namespace.name` and their calls carry the namespace again.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::wire::{Input, TextFormat, TextOptions};
use crate::dialects::str_field as string;
use crate::generation::{CallRecord, Speaker, ToolSpec, ToolUse, Turn};
use crate::{Error, Result};

/// What kind of tool the client declared, so its calls go back in the right item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `function`: arguments are a JSON object.
    Function,
    /// `custom`: the input is free text.
    Custom,
}

/// A tool the model is offered, as the client declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTool {
    /// Function or custom.
    pub kind: ToolKind,
    /// Its name within its namespace.
    pub name: String,
    /// The namespace it came in, if any.
    pub namespace: Option<String>,
}

/// The tools offered, and what each offered name stands for.
#[derive(Debug, Clone, Default)]
pub struct Offered {
    /// As the model sees them.
    pub specs: Vec<ToolSpec>,
    /// Offered name -> what the client declared.
    pub declared: HashMap<String, DeclaredTool>,
}

/// The name a tool is offered under: `namespace.name` inside a namespace.
pub fn offered_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_string(),
    }
}

/// Reads `tools`.
pub fn offered_tools(tools: &[Value]) -> Result<Offered> {
    let mut offered = Offered::default();
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        match kind_of(tool, &path)? {
            "namespace" => {
                let namespace = string(tool, "name", &path)?;
                let inner = tool.get("tools").and_then(Value::as_array).ok_or_else(|| {
                    Error::invalid(format!("{path}.tools"), "a namespace needs `tools`")
                })?;
                for (j, tool) in inner.iter().enumerate() {
                    declare(
                        &mut offered,
                        tool,
                        &format!("{path}.tools[{j}]"),
                        Some(namespace),
                    )?;
                }
            }
            _ => declare(&mut offered, tool, &path, None)?,
        }
    }
    Ok(offered)
}

fn declare(offered: &mut Offered, tool: &Value, path: &str, namespace: Option<&str>) -> Result<()> {
    let kind = match kind_of(tool, path)? {
        "function" => ToolKind::Function,
        "custom" => ToolKind::Custom,
        hosted => {
            tracing::info!(
                tool = hosted,
                "tool type `{hosted}` is not offered to the model: porten runs local models only"
            );
            return Ok(());
        }
    };
    let name = string(tool, "name", path)?;
    if name.is_empty() {
        return Err(Error::invalid(
            format!("{path}.name"),
            "a tool needs a name",
        ));
    }
    let description = tool
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    let parameters = match kind {
        ToolKind::Function => match tool.get("parameters") {
            None | Some(Value::Null) => None,
            Some(Value::Object(schema)) => Some(schema.clone()),
            Some(_) => {
                return Err(Error::invalid(
                    format!("{path}.parameters"),
                    "`parameters` must be a JSON schema object",
                ))
            }
        },
        ToolKind::Custom => Some(custom_parameters(tool)),
    };
    let offered_as = offered_name(namespace, name);
    offered.specs.push(ToolSpec {
        name: offered_as.clone(),
        description,
        parameters,
    });
    offered.declared.insert(
        offered_as,
        DeclaredTool {
            kind,
            name: name.to_string(),
            namespace: namespace.map(str::to_string),
        },
    );
    Ok(())
}

/// A custom tool takes free text: one string argument, described by the tool's format (its
/// grammar, when it has one, is shown to the model rather than enforced).
fn custom_parameters(tool: &Value) -> Map<String, Value> {
    let mut description = "The tool's input, as free text.".to_string();
    if let Some(definition) = tool
        .get("format")
        .and_then(|f| f.get("definition"))
        .and_then(Value::as_str)
    {
        description.push_str(" It must follow this grammar:\n");
        description.push_str(definition);
    }
    let schema = json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"]
    });
    schema.as_object().cloned().unwrap_or_default()
}

/// Reads `tool_choice`, narrowing `offered` for an `allowed_tools` choice.
pub fn tool_use(choice: Option<&Value>, offered: &mut Offered) -> Result<ToolUse> {
    let use_ = match choice {
        None | Some(Value::Null) => ToolUse::Auto,
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => ToolUse::Auto,
            "none" => ToolUse::None,
            "required" => ToolUse::Required,
            other => {
                return Err(Error::invalid(
                    "tool_choice",
                    format!("`tool_choice` must be auto, none, required or a tool; got `{other}`"),
                ))
            }
        },
        Some(choice @ Value::Object(_)) => match kind_of(choice, "tool_choice")? {
            "function" | "custom" => {
                let name = string(choice, "name", "tool_choice")?;
                let namespace = choice.get("namespace").and_then(Value::as_str);
                let name = offered_name(namespace, name);
                if !offered.declared.contains_key(&name) {
                    return Err(Error::invalid(
                        "tool_choice",
                        format!("`tool_choice` names `{name}`, which is not among `tools`"),
                    ));
                }
                ToolUse::Named(name)
            }
            "allowed_tools" => {
                let allowed: Vec<String> = choice
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| {
                        let name = t.get("name")?.as_str()?;
                        Some(offered_name(
                            t.get("namespace").and_then(Value::as_str),
                            name,
                        ))
                    })
                    .collect();
                offered.specs.retain(|s| allowed.contains(&s.name));
                match choice.get("mode").and_then(Value::as_str) {
                    Some("required") => ToolUse::Required,
                    _ => ToolUse::Auto,
                }
            }
            hosted => {
                tracing::info!(
                    tool = hosted,
                    "tool_choice names a hosted tool, which is not offered; the model decides"
                );
                ToolUse::Auto
            }
        },
        Some(_) => {
            return Err(Error::invalid(
                "tool_choice",
                "`tool_choice` must be a string or an object",
            ))
        }
    };
    if matches!(use_, ToolUse::Required) && offered.specs.is_empty() {
        return Err(Error::invalid(
            "tool_choice",
            "`tool_choice: required` needs a function or custom tool in `tools`",
        ));
    }
    Ok(use_)
}

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

fn kind_of<'a>(value: &'a Value, path: &str) -> Result<&'a str> {
    string(value, "type", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(value: Value) -> Input {
        Input::Items(value.as_array().unwrap().clone())
    }

    #[test]
    fn codex_s_tools_are_offered_as_functions_and_hosted_ones_left_out() {
        let tools = json!([
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "definition": "start: x"}},
            {"type": "namespace", "name": "agents", "description": "d", "tools": [
                {"type": "function", "name": "spawn", "parameters": {"type": "object"}}]},
            {"type": "web_search", "external_web_access": false},
            {"type": "local_shell"}
        ]);
        let offered = offered_tools(tools.as_array().unwrap()).unwrap();
        let names: Vec<&str> = offered.specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["exec_command", "apply_patch", "agents.spawn"]);
        let patch = &offered.specs[1].parameters.as_ref().unwrap()["properties"]["input"];
        assert!(patch["description"].as_str().unwrap().contains("start: x"));
        assert_eq!(offered.declared["apply_patch"].kind, ToolKind::Custom);
        assert_eq!(
            offered.declared["agents.spawn"].namespace.as_deref(),
            Some("agents")
        );
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

    #[test]
    fn tool_choice_names_a_declared_tool() {
        let tools = json!([{"type": "function", "name": "f"}, {"type": "function", "name": "g"}]);
        let mut offered = offered_tools(tools.as_array().unwrap()).unwrap();
        let named = tool_use(
            Some(&json!({"type": "function", "name": "f"})),
            &mut offered,
        );
        assert_eq!(named.unwrap(), ToolUse::Named("f".into()));
        assert!(tool_use(
            Some(&json!({"type": "function", "name": "h"})),
            &mut offered
        )
        .is_err());
        let allowed = json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "g"}]});
        assert_eq!(
            tool_use(Some(&allowed), &mut offered).unwrap(),
            ToolUse::Required
        );
        assert_eq!(offered.specs.len(), 1);
        let mut none = Offered::default();
        assert!(tool_use(Some(&json!("required")), &mut none).is_err());
        assert_eq!(
            tool_use(Some(&json!({"type": "web_search_preview"})), &mut none).unwrap(),
            ToolUse::Auto
        );
    }
}
