//! What every dialect's responses share: a JSON body, the status an error carries, its
//! `Retry-After` and `Allow` headers, and its message cleaned of internals. Each dialect turns
//! an [`Error`] into its own error body in one place (`dialects::*::error`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde::Serialize;

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

/// The Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: every metric as Prometheus text, rendered by the exporter the binary
/// installed (`None`: metrics are off).
pub fn prometheus(render: Option<&super::MetricsText>) -> crate::Result<Response<Body>> {
    let render = render.ok_or(Error::MetricsOff)?;
    let text = render().map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    Ok(response)
}

/// The HTTP status of an error, in every dialect unless it says otherwise.
pub fn status(error: &Error) -> StatusCode {
    use StatusCode as S;
    match error {
        Error::InvalidRequest { .. }
        | Error::WrongModelKind(_)
        | Error::ContextLengthExceeded { .. } => S::BAD_REQUEST,
        Error::ModelNotFound(_)
        | Error::RouteNotFound { .. }
        | Error::MetricsOff
        | Error::ResponseNotFound(_) => S::NOT_FOUND,
        Error::MethodNotAllowed { .. } => S::METHOD_NOT_ALLOWED,
        Error::ModelBusy(_) => S::CONFLICT,
        Error::Unsupported(_) => S::NOT_IMPLEMENTED,
        Error::Unauthorized(_) => S::UNAUTHORIZED,
        Error::PayloadTooLarge { .. } => S::PAYLOAD_TOO_LARGE,
        Error::RequestTimeout { .. } => S::REQUEST_TIMEOUT,
        Error::Overloaded { .. }
        | Error::TooManyConnections { .. }
        | Error::MemoryTaken { .. }
        | Error::ModelUnavailable { .. }
        | Error::ShuttingDown => S::SERVICE_UNAVAILABLE,
        // Retrying cannot help: 507 rather than a 503 that clients would retry.
        Error::WillNotFit { .. } => S::INSUFFICIENT_STORAGE,
        Error::Engine(_)
        | Error::Config(_)
        | Error::ModelLoad { .. }
        | Error::Io(_)
        | Error::Store(_) => S::INTERNAL_SERVER_ERROR,
    }
}

/// The message a client sees: engine messages can carry paths and backtraces, so only their
/// first line, bounded; porten's own failures say where the details are instead.
pub fn client_message(error: &Error) -> String {
    match error {
        Error::Engine(_) | Error::ModelUnavailable { .. } | Error::Store(_) => {
            let text = error.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.chars().take(400).collect()
        }
        Error::Config(_) | Error::ModelLoad { .. } | Error::Io(_) => {
            "internal server error; the server log has the details".into()
        }
        other => other.to_string(),
    }
}

/// `Retry-After` and `Allow`, where the error calls for them.
pub fn add_error_headers(error: &Error, headers: &mut HeaderMap) {
    match error {
        Error::Overloaded {
            retry_after_secs, ..
        }
        | Error::TooManyConnections {
            retry_after_secs, ..
        }
        | Error::MemoryTaken {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_details() {
        let message = client_message(&Error::ModelLoad {
            id: "m".into(),
            path: "/secret/place".into(),
            reason: "boom".into(),
        });
        assert!(!message.contains("/secret"), "{message}");
    }

    #[test]
    fn engine_errors_keep_only_their_first_line() {
        let message = client_message(&Error::Engine(
            "bad thing\n  at frame 1\n  at frame 2".into(),
        ));
        assert_eq!(message, "The model engine failed: bad thing");
    }

    #[test]
    fn overload_and_wrong_methods_say_when_and_what_instead() {
        let mut headers = HeaderMap::new();
        add_error_headers(
            &Error::Overloaded {
                model: "m".into(),
                queued: 3,
                retry_after_secs: 2,
            },
            &mut headers,
        );
        assert_eq!(headers[header::RETRY_AFTER], "2");
        let mut headers = HeaderMap::new();
        add_error_headers(
            &Error::MethodNotAllowed {
                method: "PUT".into(),
                path: "/v1/responses/x".into(),
                allowed: "GET, DELETE",
            },
            &mut headers,
        );
        assert_eq!(headers[header::ALLOW], "GET, DELETE");
    }
}
