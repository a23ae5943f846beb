//! Anthropic's Messages API, which Claude Code speaks: `system`, `messages` and tools read into
//! a [`crate::generation::Prompt`] (`input`), the answer built as a message or streamed as
//! Anthropic's events (`answer`), `count_tokens`, and Anthropic's error shape (`error`). The
//! key may come as `x-api-key` or `Authorization: Bearer`; `?beta=true` and the
//! `anthropic-version` and `anthropic-beta` headers are accepted.

mod answer;
pub mod error;
mod handler;
mod input;
pub mod wire;

pub use handler::{count_tokens, messages};
