//! Anthropic's Messages API wire types: the request (its content blocks and tools stay JSON
//! until `input` reads them, so every error can name its place), the message answered, and the
//! error shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::residency::KeepAlive;

/// `POST /v1/messages` and `POST /v1/messages/count_tokens`. Fields porten does not act on
/// (`metadata`, `context_management`, `output_config`, `service_tier`, `cache_control` on
/// blocks...) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    /// The model id.
    pub model: String,
    /// Most tokens to generate; required by `/v1/messages`, not by `count_tokens`.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The conversation.
    pub messages: Vec<Value>,
    /// System prompt: a string or text blocks.
    #[serde(default)]
    pub system: Option<Value>,
    /// Tools, each with `name`, `description` and `input_schema`.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `{"type": "auto" | "any" | "tool" | "none", "name"?}`.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Text that ends the answer when generated (reported as `stop_sequence`).
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature, 0 to 1.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Sample from the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Extended thinking: `enabled` or `disabled` pass to a model that can think; `adaptive`
    /// leaves it to the model. A model that does not think simply answers.
    #[serde(default)]
    pub thinking: Option<Value>,
    /// How long the model stays loaded after this request (a porten extension).
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// A message answered.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// `msg_...`.
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `assistant`.
    pub role: &'static str,
    /// The model id as the client named it.
    pub model: String,
    /// Text and tool calls.
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`; null while streaming.
    pub stop_reason: Option<&'static str>,
    /// The stop sequence that ended the answer.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: MessageUsage,
}

/// A block of the answer.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// `toolu_...`, which the `tool_result` names.
        id: String,
        /// The tool.
        name: String,
        /// Its input, a JSON object.
        input: Value,
    },
}

/// `usage`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MessageUsage {
    /// Tokens in the prompt.
    pub input_tokens: usize,
    /// Tokens generated.
    pub output_tokens: usize,
    /// Always 0: no prompt cache is written.
    pub cache_creation_input_tokens: usize,
    /// Always 0: no prompt cache is read.
    pub cache_read_input_tokens: usize,
}

/// `{"input_tokens": N}`, the answer of `count_tokens`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TokenCount {
    /// Tokens the request's prompt takes.
    pub input_tokens: usize,
}

/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorResponse {
    /// `error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, as Anthropic's SDKs read it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `request_too_large`, `overloaded_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A sentence for people.
    pub message: String,
}
