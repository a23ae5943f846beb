//! The tools of a Responses request as the model is offered them, and `tool_choice`.
//!
//! What agents send that a local model cannot use does not fail the request: hosted tools
//! (`web_search`, `file_search`, `computer_use`, `local_shell`, `mcp`...) are left out with a
//! log line. A `custom` (freeform) tool is offered as a function of one string argument,
//! `input`, and its calls go back to the client as `custom_tool_call` items; the functions of
//! a `namespace` are offered as `namespace.name` and their calls carry the namespace again.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::input::kind_of;
use crate::dialects::str_field as string;
use crate::generation::{ToolSpec, ToolUse};
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

#[cfg(test)]
mod tests {
    use super::*;

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
