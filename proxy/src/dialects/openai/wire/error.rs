//! The error object every failed request gets.

use serde::Serialize;

/// `{"error": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorObject,
}

/// What went wrong, shaped as OpenAI's SDKs expect.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorObject {
    /// A sentence for people.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `server_error`...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The offending request field, if any.
    pub param: Option<String>,
    /// A stable machine-readable code (`model_not_found`, `invalid_api_key`...).
    pub code: Option<&'static str>,
}
