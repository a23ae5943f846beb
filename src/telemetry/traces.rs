//! The trace pipeline: porten's `tracing` spans become OpenTelemetry spans, batched and sent
//! over OTLP, and incoming `traceparent` headers are understood.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::Layer;

/// A provider exporting over OTLP with the transport the environment picks, batched on its own
/// thread; installs the W3C trace-context propagator.
pub fn tracer_provider(resource: Resource) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().build()?;
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// The layer turning spans into OpenTelemetry spans. Only porten's own spans and events, at
/// `info` and above, go in:
/// the engine's and the HTTP stack's would drown them (and the exporter's own would loop).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("porten"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(filter_fn(|meta| {
            meta.target().starts_with("porten") && *meta.level() <= tracing::Level::INFO
        }))
}
