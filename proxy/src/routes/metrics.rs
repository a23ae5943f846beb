//! `GET /metrics`: every metric as Prometheus text, for a scraper. Open like `/health` (as in
//! vLLM): API keys guard the models, not the counters.

use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::http::respond::Body;
use crate::http::ServerState;
use crate::{Error, Result};

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics, rendered by the exporter the binary installed.
pub fn metrics(state: &ServerState) -> Result<Response<Body>> {
    let render = state.metrics.as_ref().ok_or(Error::MetricsOff)?;
    let text = render().map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let mut response = Response::new(Full::new(bytes::Bytes::from(text)).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}
