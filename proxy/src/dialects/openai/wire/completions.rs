//! `POST /v1/completions` (the legacy text completion API).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StopSequences, StreamOptions, Usage};

/// A text completion request.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The model id.
    pub model: String,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`: seconds or
    /// `"5m"`; `-1` forever, `0` unload at once). A porten extension.
    #[serde(default)]
    pub keep_alive: Option<crate::residency::KeepAlive>,
    /// Text or tokens to continue.
    pub prompt: Prompt,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (OpenAI's default: 16).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, (0, 1].
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling (an extension).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// How many completions per prompt.
    #[serde(default)]
    pub n: Option<u32>,
    /// Return the prompt before the completion.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Option<StopSequences>,
    /// -2 to 2.
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// -2 to 2.
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Token id -> bias.
    #[serde(default)]
    pub logit_bias: Option<HashMap<String, f32>>,
    /// Accepted; see `ChatCompletionRequest::seed`.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Text after the completion; not supported by mistral.rs (rejected when set).
    #[serde(default)]
    pub suffix: Option<String>,
    /// Log probabilities: the number of most likely tokens to list at each position (0-5).
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Generate this many server-side and return the best; accepted when equal to `n`.
    #[serde(default)]
    pub best_of: Option<u32>,
    /// An end-user id.
    #[serde(default)]
    pub user: Option<String>,
}

/// A completion prompt: text, texts, tokens or token lists.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One text.
    Text(String),
    /// Several texts, each completed separately.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenLists(Vec<Vec<u32>>),
}

/// A non-streaming completion answer (and, with `object` `text_completion`, each streamed chunk).
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    /// `cmpl-...`.
    pub id: String,
    /// `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// Identifies the serving backend.
    pub system_fingerprint: String,
    /// The completions.
    pub choices: Vec<CompletionChoice>,
    /// Token counts (absent on stream chunks, except the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One completion.
#[derive(Debug, Clone, Serialize)]
pub struct CompletionChoice {
    /// Position: prompt index x n + choice.
    pub index: usize,
    /// The generated text (the whole text so far in a response, the new text in a chunk).
    pub text: String,
    /// The legacy log-probability object, when asked for.
    pub logprobs: Option<Value>,
    /// `stop` or `length`; null on intermediate chunks.
    pub finish_reason: Option<String>,
}
