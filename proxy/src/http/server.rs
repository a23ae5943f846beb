//! Accepting connections: TCP_NODELAY on every socket, HTTP/1.1 keep-alive and HTTP/2,
//! a request id and a log line per request, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::state::{MetricsText, ServerState};
use super::{router, Body};
use crate::config::ServerConfig;
use crate::dialects::openai::error::error_type;
use crate::dialects::Dialect;
use crate::models::ModelRegistry;
use crate::telemetry::{self, Exchange};
use crate::Result;

/// A server bound to its address, not yet accepting.
pub struct BoundServer {
    listener: TcpListener,
    state: Arc<ServerState>,
}

impl BoundServer {
    /// Binds `config.listen`. `metrics` renders `GET /metrics`; without it the route says
    /// metrics are off.
    pub async fn bind(
        config: ServerConfig,
        models: Arc<ModelRegistry>,
        metrics: Option<MetricsText>,
    ) -> Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen).await?;
        let state = Arc::new(ServerState::new(config, models, metrics));
        Ok(Self { listener, state })
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then stops accepting, refuses queued work, and gives
    /// in-flight requests up to `shutdown_grace_secs` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let BoundServer { listener, state } = self;
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let state = state.clone();
            let service = service_fn(move |req| handle(state.clone(), peer, req));
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        state.models.close();
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!("grace period over; dropping the remaining connections"),
        }
        Ok(())
    }
}

fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4().simple()))
}

async fn handle(
    state: Arc<ServerState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, Infallible> {
    let id = request_id(&req);
    let route = router::route_template(req.uri().path());
    let span = request_span(&id, req.method(), route, req.uri().path());
    telemetry::adopt_remote_parent(&span, req.headers());
    let exchange = Exchange::start(span.clone(), req.method().clone(), route);
    async move {
        let started = Instant::now();
        let dialect = Dialect::of_path(req.uri().path());
        let mut response = match router::route(&state, req, route, &exchange).await {
            Ok(response) => {
                exchange.respond(response.status().as_u16(), None);
                response
            }
            Err(error) => {
                let response = dialect.error_response(&error);
                let status = response.status();
                if status.is_server_error() {
                    tracing::warn!(%peer, error = %error, "request failed");
                } else {
                    tracing::info!(%peer, error = %error, "request refused");
                }
                exchange.respond(status.as_u16(), Some(error_type(&error)));
                response
            }
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value);
        }
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "answered"
        );
        Ok(response)
    }
    .instrument(span)
    .await
}

/// The request's span: its id and route for the logs, and the HTTP and GenAI attributes an
/// OpenTelemetry backend expects, filled in as the handlers learn them.
fn request_span(id: &str, method: &http::Method, route: &'static str, path: &str) -> tracing::Span {
    use tracing::field::Empty;
    tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        id = %id,
        http.request.method = %method,
        http.route = route,
        url.path = %path,
        http.response.status_code = Empty,
        gen_ai.operation.name = Empty,
        gen_ai.request.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        porten.queue_wait_s = Empty,
        porten.time_to_first_token_s = Empty,
        error.type = Empty,
    )
}
