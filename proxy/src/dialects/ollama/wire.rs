//! Ollama's request and response bodies (`/api/chat`, `/api/generate`, `/api/embed`, the model
//! routes), as the official clients send and read them. Unknown fields are ignored, as Ollama
//! ignores them; `options` it does not know are accepted and unused.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::residency::KeepAlive;

/// `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model name (`smollm2`, `smollm2:latest`).
    pub model: String,
    /// The conversation; empty: load the model (or, with `keep_alive: 0`, unload it).
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Function tools, in OpenAI's `{"type": "function", "function": {...}}` shape.
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// `"json"` or a JSON schema the answer must match.
    #[serde(default)]
    pub format: Option<Value>,
    /// Sampling and runtime options.
    #[serde(default)]
    pub options: Option<Options>,
    /// NDJSON lines as generated (the default) or one object.
    #[serde(default)]
    pub stream: Option<bool>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// Whether a thinking model thinks (`true`/`false`, or a level, read as on).
    #[serde(default)]
    pub think: Option<Value>,
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text.
    #[serde(default)]
    pub content: String,
    /// Base64 images (refused: porten serves no vision model).
    #[serde(default)]
    pub images: Option<Vec<Value>>,
    /// The calls an assistant message made.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a tool result: the tool that produced it.
    #[serde(default)]
    pub tool_name: Option<String>,
    /// An assistant's earlier thinking (dropped from the prompt, as Ollama does).
    #[serde(default)]
    pub thinking: Option<String>,
}

/// A tool call, in a request's history or in an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call.
    pub function: CallFunction,
}

/// The function a call names, and its arguments as a JSON object (not text, unlike OpenAI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallFunction {
    /// Which call of the message this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The tool.
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Value,
}

/// A tool offered to the model.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    /// `function`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The function.
    pub function: ToolFunction,
}

/// A function tool.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolFunction {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// The JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// `options`: the ones porten applies, typed; every other one accepted and unused.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling; 0 is off.
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Min-p sampling.
    #[serde(default)]
    pub min_p: Option<f64>,
    /// Most tokens to generate; -1 (or -2) no limit but the context.
    #[serde(default)]
    pub num_predict: Option<i64>,
    /// The context size Ollama would load the model with: accepted, unused; porten's context
    /// is the model's `context_length`, set where the model is declared.
    #[serde(default)]
    pub num_ctx: Option<u64>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// Accepted; mistral.rs 0.8 takes no per-request seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Repetition penalty.
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Everything else (`num_gpu`, `num_thread`, `mirostat`, ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerateRequest {
    /// The model name.
    pub model: String,
    /// The prompt; empty: load the model (or, with `keep_alive: 0`, unload it).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Text after the answer (fill-in-the-middle): not supported.
    #[serde(default)]
    pub suffix: Option<String>,
    /// A system prompt, before the prompt in the model's chat template.
    #[serde(default)]
    pub system: Option<String>,
    /// A Go template to use instead of the model's: not supported.
    #[serde(default)]
    pub template: Option<String>,
    /// The `context` of an earlier answer (deprecated in Ollama): not supported.
    #[serde(default)]
    pub context: Option<Vec<i64>>,
    /// Base64 images (refused).
    #[serde(default)]
    pub images: Option<Vec<Value>>,
    /// The prompt as it is, with no template.
    #[serde(default)]
    pub raw: Option<bool>,
    /// `"json"` or a JSON schema.
    #[serde(default)]
    pub format: Option<Value>,
    /// Options.
    #[serde(default)]
    pub options: Option<Options>,
    /// NDJSON (the default) or one object.
    #[serde(default)]
    pub stream: Option<bool>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
    /// Whether a thinking model thinks.
    #[serde(default)]
    pub think: Option<Value>,
}

/// The measured times and counts of an answer's last line, in nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Durations {
    /// From the request's arrival to its end.
    pub total_duration: u64,
    /// Waiting for the model: its load (and its queue).
    pub load_duration: u64,
    /// Tokens in the prompt.
    pub prompt_eval_count: usize,
    /// From handing the prompt to the engine to the first token.
    pub prompt_eval_duration: u64,
    /// Tokens generated.
    pub eval_count: usize,
    /// From the first token to the last.
    pub eval_duration: u64,
}

/// The assistant's message in a chat line.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerMessage {
    /// `assistant`.
    pub role: &'static str,
    /// Text of this line (streaming) or the whole answer.
    pub content: String,
    /// Calls made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One line of `/api/chat` (or its one object).
#[derive(Debug, Clone, Serialize)]
pub struct ChatLine {
    /// The model as asked for.
    pub model: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The message (part).
    pub message: AnswerMessage,
    /// Whether this is the last line.
    pub done: bool,
    /// `stop`, `length`, `load`, `unload` on the last line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<&'static str>,
    /// On the last line.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub durations: Option<Durations>,
}

/// One line of `/api/generate` (or its one object).
#[derive(Debug, Clone, Serialize)]
pub struct GenerateLine {
    /// The model as asked for.
    pub model: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Text of this line, or the whole answer.
    pub response: String,
    /// Whether this is the last line.
    pub done: bool,
    /// On the last line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<&'static str>,
    /// On the last line.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub durations: Option<Durations>,
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbedRequest {
    /// The model name.
    pub model: String,
    /// One text or several.
    pub input: EmbedInput,
    /// Accepted: a too-long input is refused rather than cut.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Truncate the vectors to this many dimensions.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Options (unused for embeddings).
    #[serde(default)]
    pub options: Option<Options>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// The input of `/api/embed`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `POST /api/embeddings` (the older route).
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyEmbedRequest {
    /// The model name.
    pub model: String,
    /// The text.
    #[serde(default)]
    pub prompt: String,
    /// Options (unused).
    #[serde(default)]
    pub options: Option<Options>,
    /// How long the model stays loaded after this request.
    #[serde(default)]
    pub keep_alive: Option<KeepAlive>,
}

/// `POST /api/show`, `/api/delete`, `/api/pull`: a model named as `model` (or the older `name`).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelRequest {
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
    /// The older spelling of `model`.
    #[serde(default)]
    pub name: Option<String>,
    /// `/api/pull`: NDJSON progress (the default) or one object at the end.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `/api/pull`: accepted, unused.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// `/api/show`: accepted, unused.
    #[serde(default)]
    pub verbose: Option<bool>,
}

/// `POST /api/copy`.
#[derive(Debug, Clone, Deserialize)]
pub struct CopyRequest {
    /// The model copied.
    pub source: String,
    /// The new name.
    pub destination: String,
}

/// `details` of a model in `/api/tags`, `/api/show` and `/api/ps`.
#[derive(Debug, Clone, Serialize)]
pub struct Details {
    /// Always empty.
    pub parent_model: String,
    /// `gguf` or `safetensors`.
    pub format: String,
    /// The architecture.
    pub family: String,
    /// `[family]`, or null.
    pub families: Option<Vec<String>>,
    /// `135M`, `7.6B`.
    pub parameter_size: String,
    /// `Q4_K_M`, `F16`.
    pub quantization_level: String,
}

/// A model in `/api/tags`.
#[derive(Debug, Clone, Serialize)]
pub struct TagModel {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// RFC 3339.
    pub modified_at: String,
    /// Bytes on disk.
    pub size: u64,
    /// Hex digest of the weights.
    pub digest: String,
    /// What it is.
    pub details: Details,
}

/// A loaded model in `/api/ps`.
#[derive(Debug, Clone, Serialize)]
pub struct RunningModel {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// Bytes it takes in memory (the larger of estimate and measurement).
    pub size: u64,
    /// Hex digest of the weights.
    pub digest: String,
    /// What it is.
    pub details: Details,
    /// When its keep-alive runs out (far in the future for forever, or while it serves).
    pub expires_at: String,
    /// Of `size`, the bytes in GPU memory: all of it on a GPU build, none on the CPU.
    pub size_vram: u64,
    /// Tokens per sequence it was loaded for.
    pub context_length: u64,
}

/// A pull progress line.
#[derive(Debug, Clone, Serialize)]
pub struct PullLine {
    /// What is happening.
    pub status: String,
    /// The blob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}
