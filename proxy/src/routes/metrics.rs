//! `GET /metrics`: every metric as Prometheus text, for a scraper. Open like `/health` (as in
//! vLLM): API keys guard the models, not the counters.

use http::Response;

use crate::http::respond::{prometheus, Body};
use crate::http::ServerState;
use crate::Result;

/// The metrics, rendered by the exporter the binary installed.
pub fn metrics(state: &ServerState) -> Result<Response<Body>> {
    prometheus(state.metrics.as_ref())
}
