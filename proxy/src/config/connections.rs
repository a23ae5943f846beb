//! `[server.connections]`: what a client may owe porten. Every limit bounds the client's side of
//! a connection (sending a head, sending a body, coming back on a kept-alive connection,
//! answering HTTP/2 pings), never porten's: a long streamed answer, or a request waiting for a
//! model to load, is not cut by any of them.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Connection limits and timeouts. The defaults follow nginx and Envoy where they agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open client connections at most. 0 sizes it from the open-file limit (which porten
    /// raises to its hard limit at start-up): three quarters of it, the rest kept for model
    /// files, the store and outgoing connections. At the cap a new connection displaces an idle
    /// kept-alive one, else one still sending its head; when every connection has a request in
    /// flight it is refused with 503 and `Retry-After`.
    pub max_connections: usize,
    /// Seconds a client has to send a whole request head, from its first byte (nginx's
    /// `client_header_timeout`). A slowloris is dropped within it.
    pub head_timeout_secs: u64,
    /// Seconds a client has to send a whole request body, from the end of its head; a body
    /// that stalls is answered 408 and its connection closed.
    pub body_timeout_secs: u64,
    /// Seconds a connection with no request in flight stays open (nginx's
    /// `keepalive_timeout`, Envoy's `idle_timeout`), for HTTP/1.1 keep-alive and HTTP/2 alike.
    pub idle_timeout_secs: u64,
    /// Seconds between HTTP/2 keep-alive pings on a connection; 0 sends none.
    pub http2_keepalive_interval_secs: u64,
    /// Seconds an HTTP/2 client has to answer a ping before its connection is closed.
    pub http2_keepalive_timeout_secs: u64,
    /// Concurrent streams one HTTP/2 connection may open (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub http2_max_concurrent_streams: u32,
    /// Streams a client may open and reset before porten has handled them, per connection;
    /// past it the connection is closed (the HTTP/2 "rapid reset" attack, CVE-2023-44487).
    pub http2_max_pending_resets: usize,
    /// Bytes a request head may take (its header list, for HTTP/2); larger heads get 431.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 0,
            head_timeout_secs: 10,
            body_timeout_secs: 60,
            idle_timeout_secs: 75,
            http2_keepalive_interval_secs: 30,
            http2_keepalive_timeout_secs: 20,
            http2_max_concurrent_streams: 128,
            http2_max_pending_resets: 20,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl ConnectionLimits {
    /// `max_connections`, or its default for an open-file limit of `file_limit`.
    pub fn max_connections_for(&self, file_limit: u64) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let three_quarters = file_limit.saturating_mul(3) / 4;
        usize::try_from(three_quarters)
            .unwrap_or(usize::MAX)
            .max(16)
    }

    /// Explains what is wrong with the values, if anything.
    pub fn validate(&self) -> Result<()> {
        let zero = [
            ("head_timeout_secs", self.head_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            (
                "http2_keepalive_timeout_secs",
                self.http2_keepalive_timeout_secs,
            ),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0);
        if let Some((name, _)) = zero {
            return Err(Error::Config(format!(
                "server.connections.{name} must be at least 1"
            )));
        }
        if self.http2_max_concurrent_streams == 0 {
            return Err(Error::Config(
                "server.connections.http2_max_concurrent_streams must be at least 1".into(),
            ));
        }
        if self.max_header_bytes < 8192 {
            return Err(Error::Config(format!(
                "server.connections.max_header_bytes = {} is too small for real clients; use at \
                 least 8192",
                self.max_header_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_keeps_a_quarter_of_the_file_limit() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.max_connections_for(1024), 768);
        assert_eq!(limits.max_connections_for(8), 16);
        let set = ConnectionLimits {
            max_connections: 5,
            ..limits
        };
        assert_eq!(set.max_connections_for(1 << 20), 5);
    }

    #[test]
    fn a_zero_timeout_is_refused_by_name() {
        let limits = ConnectionLimits {
            body_timeout_secs: 0,
            ..ConnectionLimits::default()
        };
        let err = limits.validate().unwrap_err().to_string();
        assert!(err.contains("body_timeout_secs"), "{err}");
    }
}
