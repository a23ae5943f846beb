//! Ollama's own API (`/api/*`) on the same port as OpenAI's: chat and generate as NDJSON
//! streams with Ollama's timing fields, embeddings, and the model routes over porten's store
//! and mirror, so tools that speak only Ollama use porten unchanged.

mod answer;
pub mod error;
mod handler;
mod input;
mod models;
mod time;
pub mod wire;

pub use handler::{chat, embed, embeddings, generate};
pub use models::{
    copy, delete, ps, pull, refuse, resolve, resolve_or_pull, show, tags, version, OLLAMA_VERSION,
};
