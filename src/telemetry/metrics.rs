//! The meter provider: a Prometheus registry that `/metrics` renders, and a periodic OTLP push.

use std::sync::Arc;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;
use porten_proxy::http::MetricsText;
use prometheus::{Encoder, TextEncoder};

/// Builds the provider with the readers asked for, and the `/metrics` renderer when Prometheus
/// is one of them.
pub fn meter_provider(
    resource: Resource,
    prometheus: bool,
    otlp: bool,
) -> anyhow::Result<(SdkMeterProvider, Option<MetricsText>)> {
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    let mut render = None;
    if prometheus {
        let registry = prometheus::Registry::new();
        builder = builder.with_reader(
            opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()?,
        );
        render = Some(Arc::new(move || {
            let mut text = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut text)
                .map_err(|e| e.to_string())?;
            String::from_utf8(text).map_err(|e| e.to_string())
        }) as MetricsText);
    }
    if otlp {
        let exporter = opentelemetry_otlp::MetricExporter::builder().build()?;
        builder = builder.with_periodic_exporter(exporter);
        tracing::info!("exporting metrics over OTLP");
    }
    Ok((builder.build(), render))
}
