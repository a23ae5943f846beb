//! The APIs porten speaks, one folder each: its wire types, its translation into a
//! [`crate::generation::Prompt`], its rendering of the answer (one object, or a stream of its
//! own events), its handlers, and the one place its errors take their shape.

pub mod anthropic;
pub mod ollama;
pub mod openai;
pub mod responses;

use http::Response;
use serde_json::Value;

use crate::http::Body;
use crate::{Error, Result};

/// Which API a route belongs to, so that its errors come in that API's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI's (chat, completions, embeddings, models, responses) and porten's own routes.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Ollama's API (`/api/*`).
    Ollama,
}

impl Dialect {
    /// The dialect of a request for `path`: Anthropic's under `/v1/messages`, Ollama's under
    /// `/api`, OpenAI's else.
    pub fn of_path(path: &str) -> Self {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Dialect::Anthropic
        } else if path == "/api" || path.starts_with("/api/") {
            Dialect::Ollama
        } else {
            Dialect::OpenAi
        }
    }

    /// The response for a failed request, in this dialect's shape.
    pub fn error_response(self, error: &Error) -> Response<Body> {
        match self {
            Dialect::OpenAi => openai::error::error_response(error),
            Dialect::Anthropic => anthropic::error::error_response(error),
            Dialect::Ollama => ollama::error::error_response(error),
        }
    }
}

/// The last frame of a stream that `error` broke midway, in the shape of the stream at
/// `path`: an NDJSON error line for Ollama's, an `error` event for Anthropic's and the
/// Responses API's, an error object for OpenAI's chat and completions. The hub ends a
/// forwarded stream with it when its node goes away mid-answer.
pub fn stream_error_frame(path: &str, ndjson: bool, error: &Error) -> bytes::Bytes {
    let named =
        |event: &str, data: Value| bytes::Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
    match Dialect::of_path(path) {
        _ if ndjson => {
            let line = serde_json::to_string(&ollama::error::error_line(error))
                .expect("wire types always serialize");
            bytes::Bytes::from(line + "\n")
        }
        Dialect::Anthropic => named(
            "error",
            serde_json::to_value(anthropic::error::error_body(error))
                .expect("wire types always serialize"),
        ),
        Dialect::OpenAi if path.starts_with("/v1/responses") => named(
            "error",
            serde_json::json!({
                "type": "error",
                "code": openai::error::kind_and_code(error).1.unwrap_or("server_error"),
                "message": crate::http::respond::client_message(error),
                "param": null,
            }),
        ),
        Dialect::OpenAi | Dialect::Ollama => {
            let object = serde_json::to_string(&openai::error::error_object(error))
                .expect("wire types always serialize");
            bytes::Bytes::from(format!("data: {object}\n\n"))
        }
    }
}

/// `value[field]` as a string, or a 400 that names `path.field`: for the dialects that read
/// their items and blocks from JSON.
pub(crate) fn str_field<'a>(value: &'a Value, field: &str, path: &str) -> Result<&'a str> {
    match value.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::invalid(
            format!("{path}.{field}"),
            format!("`{field}` must be a string"),
        )),
        None => Err(Error::invalid(
            format!("{path}.{field}"),
            format!("missing field `{field}`"),
        )),
    }
}

/// Most inputs one embeddings request may carry (OpenAI's limit), in every API.
pub(crate) const MAX_EMBEDDING_INPUTS: usize = 2048;

/// The checks every embeddings request passes, whichever API it came in: 1 to
/// [`MAX_EMBEDDING_INPUTS`] inputs (`empty` says, per input, whether it is empty), none empty,
/// and no `dimensions` of 0.
pub(crate) fn check_embedding_inputs(empty: &[bool], dimensions: Option<usize>) -> Result<()> {
    if empty.is_empty() || empty.len() > MAX_EMBEDDING_INPUTS {
        return Err(Error::invalid(
            "input",
            format!("`input` must hold 1 to {MAX_EMBEDDING_INPUTS} items"),
        ));
    }
    if let Some(i) = empty.iter().position(|e| *e) {
        return Err(Error::invalid(
            "input",
            format!("`input[{i}]` is empty; every input needs at least one token"),
        ));
    }
    if dimensions == Some(0) {
        return Err(Error::invalid(
            "dimensions",
            "`dimensions` must be at least 1",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_stream_ends_in_its_own_dialect() {
        let error = Error::ModelUnavailable {
            model: "m".into(),
            reason: "node `n1` went away mid-answer".into(),
        };
        let text = |path, ndjson| {
            String::from_utf8(stream_error_frame(path, ndjson, &error).to_vec()).unwrap()
        };
        let chat = text("/v1/chat/completions", false);
        assert!(
            chat.starts_with("data: {\"error\":") && chat.ends_with("\n\n"),
            "{chat}"
        );
        let messages = text("/v1/messages", false);
        assert!(
            messages.starts_with("event: error\ndata: {\"type\":\"error\""),
            "{messages}"
        );
        let responses = text("/v1/responses", false);
        assert!(
            responses.starts_with("event: error\ndata: {\"type\":\"error\""),
            "{responses}"
        );
        let ollama = text("/api/chat", true);
        assert!(
            ollama.starts_with("{\"error\":") && ollama.ends_with("}\n"),
            "{ollama}"
        );
        for frame in [chat, messages, responses, ollama] {
            assert!(frame.contains("went away mid-answer"), "{frame}");
        }
    }
}
