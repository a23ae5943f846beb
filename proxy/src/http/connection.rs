//! One client connection: HTTP/1.1 or HTTP/2 with the configured limits, watched for what the
//! client owes (a head it started, an idle keep-alive), and closed gracefully at shutdown. And
//! the short answer a connection gets when the cap is full of busy ones.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::connections::{CloseReason, Connections, InFlight, Refusing, Registered, Verdict};
use super::server::Handler;
use super::tracked::Tracked;
use super::Body;
use crate::config::ConnectionLimits;
use crate::dialects::Dialect;
use crate::telemetry::instruments;
use crate::Error;

/// How long a refused connection may take to send its head and body before it is cut.
const REFUSAL_WINDOW: Duration = Duration::from_secs(2);
/// The most of a refused request's body read (so that closing does not reset the answer).
const REFUSAL_DRAIN_BYTES: usize = 256 * 1024;
/// How long an idle connection has to take its GOAWAY or close before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The HTTP/1.1 and HTTP/2 settings every connection is served with.
pub(super) fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Heads are timed by the book (from their first byte), not by hyper (whose timer would also
    // close an idle keep-alive connection at the head timeout).
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes);
    let interval = limits.http2_keepalive_interval_secs;
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.http2_max_pending_resets)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval((interval > 0).then(|| Duration::from_secs(interval)))
        .keep_alive_timeout(Duration::from_secs(limits.http2_keepalive_timeout_secs));
    builder
}

/// The settings of a refused connection: one answer, then close.
pub(super) fn refusal_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(false);
    builder
}

/// Serves `stream` with `handler` until it ends, the watchdog closes it, a new connection
/// displaces it, or shutdown has let its requests finish. Each request counts as in flight on
/// the connection from its head until its response body has been sent or dropped, so no
/// connection timeout cuts it.
pub(super) async fn serve(
    builder: Arc<auto::Builder<TokioExecutor>>,
    book: Arc<Connections>,
    handler: Handler,
    stream: TcpStream,
    peer: SocketAddr,
    registered: Registered,
    mut stop: watch::Receiver<bool>,
) {
    let activity = registered.activity.clone();
    let io = TokioIo::new(Tracked::new(stream, &registered));
    let service = {
        let (book, activity) = (book.clone(), activity.clone());
        service_fn(move |req| {
            let in_flight = book.request_started(&activity);
            let answer = handler(req, peer);
            async move {
                let response = answer.await;
                Ok::<_, Infallible>(response.map(|body| Guarded {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut look_at = Instant::now();
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.displaced() => {
                instruments().connection_closed(CloseReason::Displaced.as_str());
                tracing::debug!(%peer, "connection displaced at the connection cap");
                return;
            }
            () = activity.head_began() => look_at = Instant::now(),
            () = tokio::time::sleep_until(look_at.into()) => {
                match book.verdict(&activity, Instant::now()) {
                    Verdict::KeepUntil(next) => look_at = next,
                    Verdict::Close(reason) => {
                        instruments().connection_closed(reason.as_str());
                        tracing::debug!(%peer, reason = reason.as_str(), "closing connection");
                        if reason == CloseReason::IdleTimeout {
                            // Nothing in flight: HTTP/2 gets its GOAWAY, HTTP/1.1 a close.
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                        }
                        return;
                    }
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
pub(super) struct Guarded {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Answers every request on `stream` with a 503 and `Retry-After`, in the dialect of its path,
/// and closes it within [`REFUSAL_WINDOW`].
pub(super) async fn refuse(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    refusing: Refusing,
) {
    let error = Arc::new(Error::TooManyConnections {
        limit: refusing.cap(),
        retry_after_secs: refusing.retry_after_secs(),
    });
    let service = service_fn(move |req: Request<Incoming>| {
        let error = error.clone();
        async move {
            let dialect = Dialect::of_path(req.uri().path());
            // Read what was sent, so that closing does not reset the answer away.
            let _ = Limited::new(req.into_body(), REFUSAL_DRAIN_BYTES)
                .collect()
                .await;
            Ok::<_, Infallible>(dialect.error_response(&error))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSAL_WINDOW, conn).await;
    drop(refusing);
}
