//! Sending a request on to a node and its answer back, untouched: the body bytes as they
//! came, the answer streamed as it arrives, over pooled keep-alive connections. Only
//! hop-by-hop headers stop at the hub. A stream that breaks midway (the node died) ends with
//! an error event in its dialect instead of a cut-off connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use porten_proxy::http::Body;

/// The header that names the node which answered.
pub const NODE_HEADER: &str = "x-porten-node";

/// The hub's pooled client to its nodes.
pub type NodeClient = Client<HttpConnector, Full<Bytes>>;

/// A client whose idle connections to each node stay open for reuse.
pub fn node_client() -> NodeClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [header::HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// The request to send `node` (`host:port`): the client's method, path, headers and body.
pub fn to_node(
    node: &str,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri: Uri = format!("http://{node}{path}")
        .parse()
        .map_err(|e| format!("bad node address `{node}`: {e}"))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers.clone();
    strip_hop_by_hop(request.headers_mut());
    if let Ok(host) = HeaderValue::from_str(node) {
        request.headers_mut().insert(header::HOST, host);
    }
    Ok(request)
}

/// A node's answer as the client gets it, naming the node. `broken` is the last frame when the stream breaks
/// midway (see [`porten_proxy::dialects::stream_error_frame`]); `done` runs when the body
/// ends, however it ends.
pub fn to_client(
    answer: Response<Incoming>,
    node: &str,
    broken: Bytes,
    done: impl FnOnce() + Send + 'static,
) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(name) = HeaderValue::from_str(node) {
        parts.headers.insert(NODE_HEADER, name);
    }
    let body = Relay {
        body,
        broken: Some(broken),
        done: Some(Box::new(done)),
    };
    Response::from_parts(parts, body.boxed_unsync())
}

/// Whether an answer is a stream of events (and which kind), from its content type.
pub fn stream_kind(answer: &Response<Incoming>) -> Option<bool> {
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("text/event-stream") {
        Some(false)
    } else if content_type.starts_with("application/x-ndjson") {
        Some(true)
    } else {
        None
    }
}

/// The node's body, frame by frame; an error ends it with `broken`.
struct Relay {
    body: Incoming,
    broken: Option<Bytes>,
    done: Option<Box<dyn FnOnce() + Send>>,
}

impl Relay {
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            done();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish();
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(error = %error, "the node's answer broke midway");
                self.finish();
                match self.broken.take() {
                    Some(frame) if !frame.is_empty() => Poll::Ready(Some(Ok(Frame::data(frame)))),
                    _ => Poll::Ready(None),
                }
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() || self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A node that starts a chunked event stream and dies mid-answer, as a SIGKILLed one does.
    async fn node_that_dies_midway() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let _ = socket.read(&mut head).await.unwrap();
            socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      transfer-encoding: chunked\r\n\r\n10\r\ndata: {\"a\": 1}\n\n\r\n",
                )
                .await
                .unwrap();
            // Dropped without the last chunk.
        });
        addr
    }

    #[tokio::test]
    async fn a_stream_cut_midway_ends_with_the_error_frame_and_counts_done() {
        let addr = node_that_dies_midway().await;
        let client = node_client();
        let (parts, _) = Request::post("/v1/chat/completions")
            .body(())
            .unwrap()
            .into_parts();
        let request = to_node(&addr.to_string(), &parts, Bytes::from_static(b"{}")).unwrap();
        let answer = client.request(request).await.unwrap();
        assert_eq!(stream_kind(&answer), Some(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let relayed = to_client(
            answer,
            "n1",
            Bytes::from_static(b"data: {\"error\": {}}\n\n"),
            move || flag.store(true, std::sync::atomic::Ordering::SeqCst),
        );
        assert_eq!(relayed.headers()[NODE_HEADER], "n1");
        let body = relayed.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"data: {\"a\": 1}\n\ndata: {\"error\": {}}\n\n");
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
