//! The one place an [`Error`] becomes Anthropic's error shape, `{"type": "error", "error":
//! {"type", "message"}}`, with the statuses Anthropic uses, so the `anthropic` SDKs raise their
//! typed errors (and Claude Code recognises a prompt that is too long and an overload).

use http::{Response, StatusCode};

use super::wire::{ErrorDetail, ErrorResponse};
use crate::http::respond::{add_error_headers, client_message, json, status, Body};
use crate::Error;

/// Anthropic's overload status: its clients retry it, with their own back-off.
const OVERLOADED: u16 = 529;

/// The status and Anthropic's `error.type` of an error.
pub fn status_and_type(error: &Error) -> (StatusCode, &'static str) {
    let status = status(error);
    let kind = match error {
        Error::Unauthorized(_) => "authentication_error",
        Error::ModelNotFound(_) | Error::RouteNotFound { .. } | Error::ResponseNotFound(_) => {
            "not_found_error"
        }
        Error::PayloadTooLarge { .. } => "request_too_large",
        Error::Overloaded { .. }
        | Error::TooManyConnections { .. }
        | Error::MemoryTaken { .. }
        | Error::ShuttingDown => {
            let overloaded = StatusCode::from_u16(OVERLOADED).expect("a valid status");
            return (overloaded, "overloaded_error");
        }
        _ if status.is_client_error() => "invalid_request_error",
        _ => "api_error",
    };
    (status, kind)
}

/// The error body, as sent in a response or an `error` event.
pub fn error_body(error: &Error) -> ErrorResponse {
    let (_, kind) = status_and_type(error);
    let message = match error {
        // Anthropic's own words, which Claude Code looks for.
        Error::ContextLengthExceeded {
            prompt_tokens,
            limit,
            ..
        } => format!(
            "prompt is too long: {prompt_tokens} tokens > {} maximum (the model's context holds \
             {limit} tokens, and the answer needs at least one)",
            limit.saturating_sub(1)
        ),
        other => client_message(other),
    };
    ErrorResponse {
        kind: "error",
        error: ErrorDetail { kind, message },
    }
}

/// The response for a failed request.
pub fn error_response(error: &Error) -> Response<Body> {
    let (status, _) = status_and_type(error);
    let mut response = json(status, &error_body(error));
    add_error_headers(error, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_anthropic_s_types_and_statuses() {
        let cases = [
            (Error::Unauthorized("no"), 401, "authentication_error"),
            (Error::ModelNotFound("m".into()), 404, "not_found_error"),
            (
                Error::invalid("max_tokens", "missing"),
                400,
                "invalid_request_error",
            ),
            (
                Error::PayloadTooLarge { limit: 9 },
                413,
                "request_too_large",
            ),
            (Error::ShuttingDown, 529, "overloaded_error"),
            (Error::Engine("x".into()), 500, "api_error"),
        ];
        for (error, code, kind) in cases {
            let response = error_response(&error);
            assert_eq!(response.status().as_u16(), code, "{error}");
            assert_eq!(error_body(&error).error.kind, kind, "{error}");
        }
    }

    #[test]
    fn a_prompt_too_long_says_so_in_anthropic_s_words() {
        let body = error_body(&Error::ContextLengthExceeded {
            prompt_tokens: 9000,
            max_tokens: Some(32000),
            limit: 8192,
        });
        assert_eq!(body.error.kind, "invalid_request_error");
        assert!(
            body.error
                .message
                .starts_with("prompt is too long: 9000 tokens > 8191 maximum"),
            "{}",
            body.error.message
        );
    }
}
