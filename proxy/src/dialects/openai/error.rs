//! The one place an [`Error`] becomes OpenAI's error object `{"error": {"message", "type",
//! "param", "code"}}`, which the official SDKs turn into their typed errors.

use http::Response;

use super::wire::{ErrorObject, ErrorResponse};
use crate::http::respond::{add_error_headers, client_message, json, status, Body};
use crate::Error;

/// OpenAI's `type` and `code` of an error.
pub fn kind_and_code(error: &Error) -> (&'static str, Option<&'static str>) {
    const INVALID: &str = "invalid_request_error";
    const SERVER: &str = "server_error";
    match error {
        Error::InvalidRequest { .. } => (INVALID, None),
        Error::ContextLengthExceeded { .. } => (INVALID, Some("context_length_exceeded")),
        Error::WrongModelKind(_) => (INVALID, Some("model_not_supported")),
        Error::ModelNotFound(_) => (INVALID, Some("model_not_found")),
        Error::ResponseNotFound(_) => (INVALID, Some("response_not_found")),
        Error::RouteNotFound { .. } => (INVALID, Some("unknown_url")),
        Error::MetricsOff => (INVALID, Some("metrics_disabled")),
        Error::MethodNotAllowed { .. } => (INVALID, Some("method_not_allowed")),
        Error::Unauthorized(_) => ("authentication_error", Some("invalid_api_key")),
        Error::PayloadTooLarge { .. } => (INVALID, Some("request_too_large")),
        Error::RequestTimeout { .. } => (INVALID, Some("request_timeout")),
        Error::TooManyConnections { .. } => (SERVER, Some("too_many_connections")),
        Error::Overloaded { .. } => (SERVER, Some("model_overloaded")),
        Error::MemoryTaken { .. } => (SERVER, Some("memory_taken")),
        Error::ModelUnavailable { .. } => (SERVER, Some("model_unavailable")),
        Error::ShuttingDown => (SERVER, Some("shutting_down")),
        Error::WillNotFit { .. } => (SERVER, Some("model_too_large")),
        Error::Engine(_) => (SERVER, Some("engine_error")),
        Error::ModelBusy(_) => (INVALID, Some("model_busy")),
        Error::Unsupported(_) => (INVALID, Some("unsupported")),
        Error::Store(_) => (SERVER, Some("store_error")),
        Error::Config(_) | Error::ModelLoad { .. } | Error::Io(_) => {
            (SERVER, Some("internal_error"))
        }
    }
}

/// The error's kind in one word (its OpenAI code, else its type): telemetry's `error.type`,
/// the same whichever dialect the client spoke.
pub fn error_type(error: &Error) -> &'static str {
    let (kind, code) = kind_and_code(error);
    code.unwrap_or(kind)
}

/// The error object for `error`, as sent in a response body or an SSE event.
pub fn error_object(error: &Error) -> ErrorResponse {
    let (kind, code) = kind_and_code(error);
    let param = match error {
        Error::InvalidRequest { param, .. } => param.clone(),
        Error::ModelNotFound(_) | Error::WrongModelKind(_) => Some("model".into()),
        Error::ContextLengthExceeded { .. } => Some("messages".into()),
        _ => None,
    };
    ErrorResponse {
        error: ErrorObject {
            message: client_message(error),
            kind,
            param,
            code,
        },
    }
}

/// The response for a failed request.
pub fn error_response(error: &Error) -> Response<Body> {
    let mut response = json(status(error), &error_object(error));
    add_error_headers(error, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use http::{header, StatusCode};

    use super::*;

    #[test]
    fn overloaded_is_503_with_retry_after() {
        let r = error_response(&Error::Overloaded {
            model: "m".into(),
            queued: 3,
            retry_after_secs: 2,
        });
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn a_prompt_too_long_is_a_400_with_openai_s_code() {
        let error = Error::ContextLengthExceeded {
            prompt_tokens: 5000,
            max_tokens: Some(10),
            limit: 4096,
        };
        let body = error_object(&error);
        assert_eq!(body.error.code, Some("context_length_exceeded"));
        assert_eq!(body.error.param.as_deref(), Some("messages"));
        assert!(
            body.error.message.contains("4096"),
            "{}",
            body.error.message
        );
        assert_eq!(error_response(&error).status(), StatusCode::BAD_REQUEST);
    }
}
