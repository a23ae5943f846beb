//! OpenAI's API: chat completions, text completions, embeddings and models, with their wire
//! types in `wire`, their translation into a [`crate::generation::Prompt`] in `chat_request`,
//! the engine's answers back in `output`, and OpenAI's error object in `error`.

mod chat;
mod chat_request;
mod completions;
mod embeddings;
pub mod error;
mod models;
mod output;
mod scored;
mod stream;
mod tokenize;
pub mod wire;

pub use chat::chat_completions;
pub use completions::completions;
pub use embeddings::embeddings;
pub use models::{get as get_model, list as list_models};
pub use tokenize::{detokenize, tokenize, tokenizer_info};
