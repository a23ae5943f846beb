//! `POST /v1/embeddings`.

use serde::{Deserialize, Serialize};

/// An embeddings request.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// The model id.
    pub model: String,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`: seconds or
    /// `"5m"`; `-1` forever, `0` unload at once). A porten extension.
    #[serde(default)]
    pub keep_alive: Option<crate::residency::KeepAlive>,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian f32, what the Python SDK asks for).
    #[serde(default)]
    pub encoding_format: Option<EncodingFormat>,
    /// Output size; only the model's own size is accepted.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// An end-user id.
    #[serde(default)]
    pub user: Option<String>,
}

/// The input of an embeddings request.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One input as token ids.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenLists(Vec<Vec<u32>>),
}

/// How vectors are written in the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of little-endian f32s.
    Base64,
}

/// The answer: one vector per input, in input order.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingList {
    /// `list`.
    pub object: &'static str,
    /// The vectors.
    pub data: Vec<Embedding>,
    /// The model id.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingUsage,
}

/// One vector.
#[derive(Debug, Clone, Serialize)]
pub struct Embedding {
    /// `embedding`.
    pub object: &'static str,
    /// Position of its input.
    pub index: usize,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// A vector as numbers or as base64.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// JSON numbers.
    Float(Vec<f32>),
    /// Base64 of little-endian f32s.
    Base64(String),
}

/// Token counts of an embeddings request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EmbeddingUsage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// Same as `prompt_tokens`.
    pub total_tokens: usize,
}
