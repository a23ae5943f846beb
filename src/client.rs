//! Talking to a running porten from the command line (`run`, `ps`, `stop`): its address from
//! `--host` / `PORTEN_HOST` (Ollama's `OLLAMA_HOST` spelling: with or without `http://`), its
//! API key from `--api-key` / `PORTEN_API_KEY`, JSON requests and NDJSON streams.

use anyhow::{bail, Context};
use serde_json::Value;

/// Where `porten serve` listens by default.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8080";

/// A running server's address and key.
#[derive(Debug, Clone)]
pub struct Server {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Server {
    /// The server at `host` (`127.0.0.1:8080`, `http://host:port`), with `api_key`.
    pub fn new(host: &str, api_key: Option<String>) -> Self {
        let host = host.trim().trim_end_matches('/');
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_string()
        } else {
            format!("http://{host}")
        };
        Self {
            base,
            api_key: api_key.filter(|k| !k.is_empty()),
            http: reqwest::Client::new(),
        }
    }

    /// Its base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether something answers `/health` there.
    pub async fn is_up(&self) -> bool {
        let probe = self
            .http
            .get(format!("{}/health", self.base))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await;
        probe.is_ok_and(|r| r.status().is_success())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach porten at {}", self.base))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        json_of(self.send(self.request(reqwest::Method::GET, path)).await?).await
    }

    /// `POST path` with `body`, as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.request(reqwest::Method::POST, path).json(body);
        json_of(self.send(request).await?).await
    }

    /// `POST path` with `body`, read as an NDJSON stream.
    pub async fn stream(&self, path: &str, body: &Value) -> anyhow::Result<Lines> {
        let request = self.request(reqwest::Method::POST, path).json(body);
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        Ok(Lines {
            response,
            buffer: Vec::new(),
        })
    }
}

/// An NDJSON stream, one object at a time.
pub struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Lines {
    /// The next object; `None` at the end. An `{"error": ...}` line is the error.
    pub async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value = serde_json::from_slice(&line).context("a malformed line")?;
                if let Some(error) = value.get("error").and_then(Value::as_str) {
                    bail!("{error}");
                }
                return Ok(Some(value));
            }
            match self
                .response
                .chunk()
                .await
                .context("the stream broke off")?
            {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None if self.buffer.is_empty() => return Ok(None),
                None => self.buffer.push(b'\n'),
            }
        }
    }
}

async fn json_of(response: reqwest::Response) -> anyhow::Result<Value> {
    if !response.status().is_success() {
        return Err(error_of(response).await);
    }
    response
        .json()
        .await
        .context("porten answered something else than JSON")
}

/// The error a failed answer carries, in whichever of porten's shapes it came.
async fn error_of(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body["error"]
        .as_str()
        .or_else(|| body["error"]["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    anyhow::anyhow!("{message} ({status})")
}

#[cfg(test)]
mod tests {
    use super::Server;

    #[test]
    fn hosts_take_ollama_s_spellings() {
        assert_eq!(
            Server::new("127.0.0.1:11434", None).base(),
            "http://127.0.0.1:11434"
        );
        assert_eq!(
            Server::new("http://box:8080/", None).base(),
            "http://box:8080"
        );
        assert_eq!(Server::new("https://box", None).base(), "https://box");
    }
}
