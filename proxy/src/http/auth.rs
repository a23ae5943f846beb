//! API keys: `Authorization: Bearer KEY` (OpenAI's clients) or `x-api-key: KEY` (Anthropic's),
//! compared in constant time.

use http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// The keys this server accepts; none means every request is let in.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// Accept these keys.
    pub fn new(keys: &[String]) -> Self {
        Self {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }
    }

    /// Lets the request in, or says why not.
    pub fn check(&self, headers: &HeaderMap) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let presented = bearer
            .or(x_api_key)
            .map(str::trim)
            .ok_or(Error::Unauthorized(
                "Missing API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY`",
            ))?;
        // Compare against every key without stopping early, so timing does not tell which
        // key (or how much of one) matched. Only a key's length can show through.
        let matched = self
            .keys
            .iter()
            .fold(subtle::Choice::from(0u8), |acc, key| {
                acc | key.as_slice().ct_eq(presented.as_bytes())
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Error::Unauthorized("Incorrect API key provided"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn no_keys_lets_everyone_in() {
        assert!(ApiKeys::default().check(&headers(None)).is_ok());
    }

    #[test]
    fn only_a_configured_bearer_key_passes() {
        let keys = ApiKeys::new(&["alpha".into(), "beta".into()]);
        assert!(keys.check(&headers(Some("Bearer beta"))).is_ok());
        assert!(keys.check(&headers(Some("Bearer bet"))).is_err());
        assert!(keys.check(&headers(Some("Basic beta"))).is_err());
        assert!(
            matches!(keys.check(&headers(None)), Err(Error::Unauthorized(m)) if m.contains("Missing"))
        );
    }

    #[test]
    fn anthropic_clients_may_send_the_key_as_x_api_key() {
        let keys = ApiKeys::new(&["alpha".into()]);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("alpha"));
        assert!(keys.check(&h).is_ok());
        h.insert("x-api-key", HeaderValue::from_static("alpha2"));
        assert!(keys.check(&h).is_err());
    }
}
