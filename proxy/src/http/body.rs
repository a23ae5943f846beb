//! Reading a JSON request body: bounded in size and in time, and every parse error names the
//! field.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::config::ServerConfig;
use crate::{Error, Result};

/// Reads at most `server.max_body_bytes` of `req`'s body, within
/// `server.connections.body_timeout_secs`, and parses them as `T`.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    config: &ServerConfig,
) -> Result<T> {
    let (parts, body) = req.into_parts();
    parse_json(&read_body(&parts.headers, body, config).await?)
}

/// Reads at most `server.max_body_bytes` of a request's body (`headers` are its head's),
/// within `server.connections.body_timeout_secs`: a larger body is a 413, a slower one a 408.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    config: &ServerConfig,
) -> Result<Bytes> {
    let limit = config.max_body_bytes;
    let secs = config.connections.body_timeout_secs;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    let collect = Limited::new(body, limit).collect();
    let Ok(collected) = tokio::time::timeout(Duration::from_secs(secs), collect).await else {
        return Err(Error::RequestTimeout { secs });
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Error::PayloadTooLarge { limit })
        }
        Err(e) => {
            return Err(Error::InvalidRequest {
                message: format!("could not read the request body: {e}"),
                param: None,
            })
        }
    };
    Ok(bytes)
}

/// Parses `bytes` as `T`, turning serde's complaint into a 400 that names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidRequest {
            message: "the request body is empty; expected a JSON object".into(),
            param: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de);
    if value.is_ok() {
        // Trailing bytes after the object are as malformed as a truncated one.
        de.end().map_err(|e| Error::InvalidRequest {
            message: format!("the request body is not valid JSON: {e}"),
            param: None,
        })?;
    }
    value.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return Error::InvalidRequest {
                message: format!("the request body is not valid JSON: {inner}"),
                param: None,
            };
        }
        let message = inner.to_string();
        let param = if path == "." {
            missing_field(&message)
        } else {
            Some(path)
        };
        let message = match &param {
            Some(p) => format!("invalid request field `{p}`: {message}"),
            None => format!("invalid request: {message}"),
        };
        Error::InvalidRequest { message, param }
    })
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::openai::wire::ChatCompletionRequest;

    fn param_of(body: &str) -> (Option<String>, String) {
        match parse_json::<ChatCompletionRequest>(body.as_bytes()) {
            Err(Error::InvalidRequest { param, message }) => (param, message),
            other => panic!("expected a 400, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn a_wrong_type_names_its_path() {
        let (param, message) = param_of(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
        );
        assert_eq!(param.as_deref(), Some("temperature"));
        assert!(message.contains("temperature"), "{message}");
    }

    #[test]
    fn an_unknown_role_names_the_message() {
        let (param, _) = param_of(r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#);
        assert_eq!(param.as_deref(), Some("messages[0].role"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let (param, _) = param_of(r#"{"messages":[]}"#);
        assert_eq!(param.as_deref(), Some("model"));
    }

    #[test]
    fn truncated_and_trailing_garbage_are_malformed_json() {
        for body in [
            r#"{"model":"m","#,
            r#"{"model":"m","messages":[]} x"#,
            "\u{0}",
        ] {
            let (param, message) = param_of(body);
            assert_eq!(param, None);
            assert!(message.contains("not valid JSON"), "{message}");
        }
    }
}
