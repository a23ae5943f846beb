//! The one place where an [`Error`] becomes an HTTP response: OpenAI's error object, the right
//! status, `Retry-After` and `Allow` where they apply, and no internals in the message.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde::Serialize;

use crate::openai::{ErrorObject, ErrorResponse};
use crate::Error;

/// Every response body porten sends.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("wire types always serialize");
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Status, OpenAI `type` and `code` of an error.
pub fn classify(error: &Error) -> (StatusCode, &'static str, Option<&'static str>) {
    use StatusCode as S;
    const INVALID: &str = "invalid_request_error";
    const SERVER: &str = "server_error";
    match error {
        Error::InvalidRequest { .. } => (S::BAD_REQUEST, INVALID, None),
        Error::WrongModelKind(_) => (S::BAD_REQUEST, INVALID, Some("model_not_supported")),
        Error::ModelNotFound(_) => (S::NOT_FOUND, INVALID, Some("model_not_found")),
        Error::RouteNotFound { .. } => (S::NOT_FOUND, INVALID, Some("unknown_url")),
        Error::MetricsOff => (S::NOT_FOUND, INVALID, Some("metrics_disabled")),
        Error::MethodNotAllowed { .. } => {
            (S::METHOD_NOT_ALLOWED, INVALID, Some("method_not_allowed"))
        }
        Error::Unauthorized(_) => (
            S::UNAUTHORIZED,
            "authentication_error",
            Some("invalid_api_key"),
        ),
        Error::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, INVALID, Some("request_too_large")),
        Error::Overloaded { .. } => (S::SERVICE_UNAVAILABLE, SERVER, Some("model_overloaded")),
        Error::ModelUnavailable { .. } => {
            (S::SERVICE_UNAVAILABLE, SERVER, Some("model_unavailable"))
        }
        Error::ShuttingDown => (S::SERVICE_UNAVAILABLE, SERVER, Some("shutting_down")),
        // Retrying cannot help: 507 rather than a 503 that clients would retry.
        Error::WillNotFit { .. } => (S::INSUFFICIENT_STORAGE, SERVER, Some("model_too_large")),
        Error::Engine(_) => (S::INTERNAL_SERVER_ERROR, SERVER, Some("engine_error")),
        Error::Config(_) | Error::ModelLoad { .. } | Error::Io(_) => {
            (S::INTERNAL_SERVER_ERROR, SERVER, Some("internal_error"))
        }
    }
}

/// The error's kind in one word (its OpenAI code, else its type): telemetry's `error.type`.
pub fn error_type(error: &Error) -> &'static str {
    let (_, kind, code) = classify(error);
    code.unwrap_or(kind)
}

/// The error object for `error`, as sent in a response body or an SSE event.
pub fn error_object(error: &Error) -> ErrorResponse {
    let (_, kind, code) = classify(error);
    let param = match error {
        Error::InvalidRequest { param, .. } => param.clone(),
        Error::ModelNotFound(_) | Error::WrongModelKind(_) => Some("model".into()),
        _ => None,
    };
    let message = match error {
        // Engine messages can carry paths and backtraces: keep the first line, bounded.
        Error::Engine(_) | Error::ModelUnavailable { .. } => {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.chars().take(400).collect()
        }
        Error::Config(_) | Error::ModelLoad { .. } | Error::Io(_) => {
            "internal server error; the server log has the details".into()
        }
        other => other.to_string(),
    };
    ErrorResponse {
        error: ErrorObject {
            message,
            kind,
            param,
            code,
        },
    }
}

/// The response for a failed request.
pub fn error(error: &Error) -> Response<Body> {
    let (status, _, _) = classify(error);
    let mut response = json(status, &error_object(error));
    let headers = response.headers_mut();
    match error {
        Error::Overloaded {
            retry_after_secs, ..
        } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        Error::ShuttingDown => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        Error::MethodNotAllowed { allowed, .. } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_is_503_with_retry_after() {
        let r = error(&Error::Overloaded {
            model: "m".into(),
            queued: 3,
            retry_after_secs: 2,
        });
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let body = error_object(&Error::ModelLoad {
            id: "m".into(),
            path: "/secret/place".into(),
            reason: "boom".into(),
        });
        assert!(
            !body.error.message.contains("/secret"),
            "{}",
            body.error.message
        );
    }

    #[test]
    fn engine_errors_keep_only_their_first_line() {
        let body = error_object(&Error::Engine(
            "bad thing\n  at frame 1\n  at frame 2".into(),
        ));
        assert_eq!(body.error.message, "The model engine failed: bad thing");
    }
}
