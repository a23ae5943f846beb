//! W3C trace context from the client: a request that arrives with `traceparent` joins the
//! caller's trace instead of starting its own.

use opentelemetry_http::HeaderExtractor;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes the caller's span (from `traceparent`/`tracestate`) the parent of `span`. Call it
/// before the span is first entered. Without a tracing pipeline the global propagator is a
/// no-op, so this costs one header lookup.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    if let Err(e) = span.set_parent(parent) {
        tracing::debug!(error = %e, "cannot join the caller's trace");
    }
}
