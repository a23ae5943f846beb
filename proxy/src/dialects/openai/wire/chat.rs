//! `POST /v1/chat/completions`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StopSequences, StreamOptions, Usage};

/// A chat completion request.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model id.
    pub model: String,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`: seconds or
    /// `"5m"`; `-1` forever, `0` unload at once). A porten extension.
    #[serde(default)]
    pub keep_alive: Option<crate::residency::KeepAlive>,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Sampling temperature, 0 to 2 (OpenAI's default: 1).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, (0, 1].
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Sample from the k most likely tokens (an extension most local servers accept).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Min-p sampling (an extension).
    #[serde(default)]
    pub min_p: Option<f64>,
    /// Most tokens to generate (deprecated alias of `max_completion_tokens`).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<StopSequences>,
    /// Accepted for compatibility; mistral.rs 0.8 has no per-request seed (see the README).
    #[serde(default)]
    pub seed: Option<i64>,
    /// -2 to 2.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// -2 to 2.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Repetition penalty (an extension), > 0.
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    /// Token id (as a string) -> bias from -100 to 100.
    #[serde(default)]
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Return log probabilities of the chosen tokens.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// How many alternatives per position to return with `logprobs`, 0 to 20.
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// How many choices to generate.
    #[serde(default)]
    pub n: Option<u32>,
    /// Functions the model may call.
    #[serde(default)]
    pub tools: Option<Vec<ToolDefinition>>,
    /// `none`, `auto`, `required` or a named function.
    #[serde(default)]
    pub tool_choice: Option<ToolChoiceParam>,
    /// `text`, `json_object` or `json_schema`.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// An end-user id; logged, not acted on.
    #[serde(default)]
    pub user: Option<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// OpenAI's newer name for system instructions.
    Developer,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool's result.
    Tool,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Text, or an array of content parts; may be null on an assistant message with tool calls.
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// A participant name.
    #[serde(default)]
    pub name: Option<String>,
    /// Calls the assistant made.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Which call a tool message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A message's content.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts (`{"type": "text", "text": ...}`).
    Parts(Vec<ContentPart>),
}

/// One typed part of a message's content.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url`, `input_audio`...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A tool the model may call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A callable function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// OpenAI's strict mode flag; accepted.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoiceParam {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type": "function", "function": {"name": ...}}`.
    Named(NamedToolChoice),
}

/// A tool choice that names one function.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function to call.
    pub function: NamedFunction,
}

/// A function named by `tool_choice`.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// The schema of a `json_schema` response format.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    pub name: String,
    /// The JSON schema itself; absent means any JSON object.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Accepted; constrained decoding is always strict here.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Accepted.
    #[serde(default)]
    pub description: Option<String>,
}

/// A call the assistant made, in a response or in a later request's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed by the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What was called.
    pub function: FunctionCall,
}

/// The function and arguments of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as a JSON string.
    pub arguments: String,
}

/// A non-streaming chat answer.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model id as the client named it.
    pub model: String,
    /// Identifies the serving backend.
    pub system_fingerprint: String,
    /// The generated choices.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: Usage,
}

/// One generated answer.
#[derive(Debug, Clone, Serialize)]
pub struct ChatChoice {
    /// Position among `n` choices.
    pub index: usize,
    /// The assistant's message.
    pub message: AssistantMessage,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: String,
    /// Log probabilities, when asked for.
    pub logprobs: Option<Value>,
}

/// The assistant's message in an answer.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantMessage {
    /// `assistant`.
    pub role: &'static str,
    /// The text, or null when the model only called tools.
    pub content: Option<String>,
    /// The calls it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Always null: local models do not refuse through this field.
    pub refusal: Option<String>,
}

/// One server-sent event of a streaming chat answer.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletionChunk {
    /// Same for every chunk of one answer.
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// Identifies the serving backend.
    pub system_fingerprint: String,
    /// The deltas; empty in the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Present (null until the last chunk) when `stream_options.include_usage` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<Usage>>,
}

/// A delta for one choice.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    /// Position among `n` choices.
    pub index: usize,
    /// What is new.
    pub delta: Delta,
    /// Set on the last delta of the choice.
    pub finish_reason: Option<String>,
    /// Log probabilities, when asked for.
    pub logprobs: Option<Value>,
}

/// What a chunk adds to the assistant's message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    /// `assistant`, on the first delta of each choice only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New tool calls, each complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A tool call inside a streamed delta.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallDelta {
    /// Position among the message's tool calls.
    pub index: usize,
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}
