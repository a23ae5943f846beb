//! One request, from its head to its answer: a request id, a span, the router, the error shape
//! of the client's dialect, and a log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use tracing::Instrument;

use super::connections::CloseReason;
use super::state::ServerState;
use super::{router, Body};
use crate::dialects::openai::error::error_type;
use crate::dialects::Dialect;
use crate::telemetry::{self, instruments, Exchange};
use crate::Error;

fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req-{}", uuid::Uuid::new_v4().simple()))
}

/// Answers one request from `peer`.
pub(super) async fn handle(
    state: Arc<ServerState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let id = request_id(&req);
    let route = router::route_template(req.uri().path());
    let span = request_span(&id, req.method(), route, req.uri().path());
    telemetry::adopt_remote_parent(&span, req.headers());
    let exchange = Exchange::start(span.clone(), req.method().clone(), route);
    async move {
        let started = Instant::now();
        let dialect = Dialect::of_path(req.uri().path());
        let http1 = req.version() < Version::HTTP_2;
        let mut response = match router::route(&state, req, route, &exchange).await {
            Ok(response) => {
                exchange.respond(response.status().as_u16(), None);
                response
            }
            Err(error) => {
                let mut response = dialect.error_response(&error);
                let status = response.status();
                if status.is_server_error() {
                    tracing::warn!(%peer, error = %error, "request failed");
                } else {
                    tracing::info!(%peer, error = %error, "request refused");
                }
                if matches!(error, Error::RequestTimeout { .. }) && http1 {
                    // The rest of the body may still come: the connection cannot be reused.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    instruments().connection_closed(CloseReason::BodyTimeout.as_str());
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
        response
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
        porten.prompt_check_s = Empty,
        porten.time_to_first_token_s = Empty,
        error.type = Empty,
    )
}
