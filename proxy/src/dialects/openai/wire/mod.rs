//! The OpenAI HTTP API's wire types, and nothing else: what clients send and what they get back.
//! Fields porten does not act on are still accepted, so unmodified SDKs and tools work.

mod chat;
mod completions;
mod embeddings;
mod error;
mod models;

pub use chat::*;
pub use completions::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;

use serde::{Deserialize, Serialize};

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// A single stop string.
    One(String),
    /// Up to four stop strings.
    Many(Vec<String>),
}

impl StopSequences {
    /// The sequences as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s],
            StopSequences::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token counts and no choices.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// The sum of both.
    pub total_tokens: usize,
}

impl Usage {
    /// Counts from the prompt and completion sizes.
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}
