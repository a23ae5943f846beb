//! The Responses API's wire types: the request (its items and tools stay JSON until
//! `input` reads them, so every error can name its place) and the response object with its
//! output items.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::residency::KeepAlive;

/// `POST /v1/responses`. Fields porten does not act on (`include`, `prompt_cache_key`,
/// `reasoning`, `truncation`, `service_tier`, `client_metadata`...) are accepted and ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateResponse {
    /// The model id.
    pub model: String,
    /// A string (one user message) or a list of items.
    #[serde(default)]
    pub input: Option<Input>,
    /// A system message placed before the input (not carried over by `previous_response_id`).
    #[serde(default)]
    pub instructions: Option<String>,
    /// Tools, each a JSON object with a `type`.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    /// `auto`, `none`, `required`, or an object naming a tool.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools in one turn (default true).
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// The output format.
    #[serde(default)]
    pub text: Option<TextOptions>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Keep the response for `previous_response_id` and `GET` (default true).
    #[serde(default)]
    pub store: Option<bool>,
    /// Continue the conversation of a stored response.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Up to 16 key-value pairs, echoed back.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// An end-user id; echoed, not acted on.
    #[serde(default)]
    pub user: Option<String>,
    /// Echoed back.
    #[serde(default)]
    pub reasoning: Option<Value>,
    /// How long the model stays loaded after this request (a porten extension, as in chat).
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// `input`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Items: messages, function calls and their outputs.
    Items(Vec<Value>),
}

/// `text`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TextOptions {
    /// The format of the answer.
    #[serde(default)]
    pub format: Option<TextFormat>,
    /// Accepted and echoed (a GPT-5 setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

/// `text.format`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema's name.
        #[serde(default)]
        name: Option<String>,
        /// The JSON schema; absent means any object.
        #[serde(default)]
        schema: Option<Value>,
        /// Accepted; constrained decoding is always strict.
        #[serde(default)]
        strict: Option<bool>,
        /// Accepted.
        #[serde(default)]
        description: Option<String>,
    },
}

/// A response: what `POST` answers, what `GET` returns, and what stream events carry.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseObject {
    /// `resp_...`.
    pub id: String,
    /// `response`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: &'static str,
    /// Unix seconds, once it is over.
    pub completed_at: Option<u64>,
    /// Why it failed.
    pub error: Option<ResponseError>,
    /// Why it is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// The request's instructions.
    pub instructions: Option<String>,
    /// The request's output limit.
    pub max_output_tokens: Option<u64>,
    /// The model id as the client named it.
    pub model: String,
    /// What the model produced.
    pub output: Vec<OutputItem>,
    /// As asked.
    pub parallel_tool_calls: bool,
    /// The response this one continues.
    pub previous_response_id: Option<String>,
    /// As asked (reasoning is not produced here).
    pub reasoning: Value,
    /// Whether it is kept.
    pub store: bool,
    /// As asked.
    pub temperature: Option<f64>,
    /// The output format.
    pub text: Value,
    /// As asked.
    pub tool_choice: Value,
    /// As asked.
    pub tools: Vec<Value>,
    /// As asked.
    pub top_p: Option<f64>,
    /// Always `disabled`: a prompt too long is refused, never cut.
    pub truncation: &'static str,
    /// Token counts, once it is over.
    pub usage: Option<ResponseUsage>,
    /// As asked.
    pub user: Option<String>,
    /// As asked.
    pub metadata: Map<String, Value>,
    /// Identifies the serving backend (a porten extension).
    pub system_fingerprint: &'static str,
}

/// `error` of a failed response.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseError {
    /// `context_length_exceeded`, `server_error`...
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

/// `incomplete_details`.
#[derive(Debug, Clone, Serialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens`.
    pub reason: &'static str,
}

/// `usage`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResponseUsage {
    /// Tokens in the prompt.
    pub input_tokens: usize,
    /// Details of the input tokens.
    pub input_tokens_details: InputTokensDetails,
    /// Tokens generated.
    pub output_tokens: usize,
    /// Details of the output tokens.
    pub output_tokens_details: OutputTokensDetails,
    /// The sum of both.
    pub total_tokens: usize,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InputTokensDetails {
    /// Prompt tokens read from a cache: none here.
    pub cached_tokens: usize,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens: none here.
    pub reasoning_tokens: usize,
}

impl ResponseUsage {
    /// Counts from the prompt and answer sizes.
    pub fn new(input_tokens: usize, output_tokens: usize) -> Self {
        Self {
            input_tokens,
            input_tokens_details: InputTokensDetails { cached_tokens: 0 },
            output_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: 0,
            },
            total_tokens: input_tokens + output_tokens,
        }
    }
}

/// One item of `output`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The model's text.
    Message {
        /// `msg_...`.
        id: String,
        /// `in_progress`, `completed` or `incomplete`.
        status: &'static str,
        /// `assistant`.
        role: &'static str,
        /// The text, as one `output_text` part.
        content: Vec<OutputText>,
    },
    /// A call of a function tool.
    FunctionCall {
        /// `fc_...`.
        id: String,
        /// `call_...`, which the `function_call_output` names.
        call_id: String,
        /// The function's name.
        name: String,
        /// Its arguments, a JSON object as text.
        arguments: String,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// The namespace the function came in, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
    /// A call of a custom (freeform) tool.
    CustomToolCall {
        /// `ctc_...`.
        id: String,
        /// `call_...`, which the `custom_tool_call_output` names.
        call_id: String,
        /// The tool's name.
        name: String,
        /// Its input, free text.
        input: String,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// The namespace the tool came in, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
    },
}

/// An `output_text` content part.
#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    /// `output_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The text.
    pub text: String,
    /// Always empty.
    pub annotations: Vec<Value>,
    /// Always empty.
    pub logprobs: Vec<Value>,
}

impl OutputText {
    /// A part holding `text`.
    pub fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// The answer to `DELETE /v1/responses/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    /// The id.
    pub id: String,
    /// `response`.
    pub object: &'static str,
    /// Always true.
    pub deleted: bool,
}
