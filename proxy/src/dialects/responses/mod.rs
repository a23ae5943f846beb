//! OpenAI's Responses API, which Codex CLI and the Agents SDKs speak: `input` items and tools
//! read into a [`crate::generation::Prompt`] (`input`), the answer built as a response object or
//! streamed as the API's events (`answer`), stored responses for `previous_response_id`
//! (`store`), and the handlers. Errors take OpenAI's shape, as for chat.

mod answer;
mod handler;
mod input;
pub mod store;
mod tools;
pub mod wire;

pub use handler::{create, delete, input_items, retrieve};
