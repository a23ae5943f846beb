//! Installs what porten reports through: logs (`tracing`, text or JSON), traces (the
//! OpenTelemetry SDK with an OTLP exporter) and metrics (an OpenTelemetry meter provider read by
//! `/metrics` and, when asked, pushed over OTLP).
//!
//! The libraries record through the OpenTelemetry API only; this module decides where it goes.
//! Traces and OTLP metrics follow the standard variables: they are on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or the signal's own `..._TRACES_ENDPOINT` /
//! `..._METRICS_ENDPOINT`) is set, or `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` is `otlp`;
//! `OTEL_SDK_DISABLED=true` or a signal exporter of `none` turns them off. The SDK itself reads
//! the rest: `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`, the
//! default; the exporter's `http-json` feature is left out because it would become the default), `OTEL_SERVICE_NAME` (default `porten`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`, headers, timeouts.

mod log_fields;
mod metrics;
mod traces;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use porten_proxy::http::MetricsText;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::LogFormat;
use crate::config::TelemetrySettings;

/// Reads an environment variable; the binary passes `std::env::var`, tests a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The installed pipelines; [`Telemetry::shutdown`] flushes what is still buffered.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

/// A signal whose OTLP export the environment may turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
}

impl Signal {
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }
}

/// Whether the standard variables ask for OTLP export of `signal` (see the module docs).
pub fn otlp_wanted(signal: Signal, env: EnvLookup<'_>) -> bool {
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    if set("OTEL_SDK_DISABLED").as_deref() == Some("true") {
        return false;
    }
    let exporter = set(&format!("OTEL_{}_EXPORTER", signal.upper()));
    match exporter.as_deref() {
        Some("otlp") => true,
        Some(_) => false,
        None => {
            set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || set(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper())).is_some()
        }
    }
}

impl Telemetry {
    /// Installs logging (filtered by `RUST_LOG`, default `info`) and, when the environment asks
    /// for it, the OTLP trace pipeline. Call once, first thing, inside the Tokio runtime (the
    /// gRPC exporter needs it).
    pub fn init(format: LogFormat, env: EnvLookup<'_>, default_level: &str) -> Self {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
        let logs = log_fields::log_layer(format);
        let (tracer, trace_error) = if otlp_wanted(Signal::Traces, env) {
            match traces::tracer_provider(resource(env)) {
                Ok(provider) => (Some(provider), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let otel = tracer.as_ref().map(traces::layer);
        tracing_subscriber::registry()
            .with(logs.with_filter(filter))
            .with(otel)
            .init();
        if let Some(e) = trace_error {
            tracing::error!(error = %e, "cannot export traces; serving without them");
        } else if tracer.is_some() {
            tracing::info!("exporting traces over OTLP");
        }
        Self {
            tracer,
            meter: None,
        }
    }

    /// Installs the meter provider: read by `/metrics` when `settings.prometheus`, pushed over
    /// OTLP when the environment asks. Returns what renders `/metrics`. Call before the store
    /// and the models are set up: instruments bind to the provider installed when first used.
    pub fn install_metrics(
        &mut self,
        settings: &TelemetrySettings,
        env: EnvLookup<'_>,
    ) -> anyhow::Result<Option<MetricsText>> {
        let otlp = otlp_wanted(Signal::Metrics, env);
        if !settings.prometheus && !otlp {
            tracing::info!("metrics are off");
            return Ok(None);
        }
        let (provider, render) = metrics::meter_provider(resource(env), settings.prometheus, otlp)?;
        opentelemetry::global::set_meter_provider(provider.clone());
        self.meter = Some(provider);
        Ok(render)
    }

    /// Flushes buffered spans and metrics. Blocks: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer {
            if let Err(e) = tracer.shutdown() {
                eprintln!("porten: flushing traces failed: {e}");
            }
        }
        if let Some(meter) = self.meter {
            if let Err(e) = meter.shutdown() {
                eprintln!("porten: flushing metrics failed: {e}");
            }
        }
    }
}

/// `service.name` from `OTEL_SERVICE_NAME` (the SDK reads it), else `porten`; the version.
fn resource(env: EnvLookup<'_>) -> Resource {
    let builder = Resource::builder();
    let builder = match env("OTEL_SERVICE_NAME").filter(|v| !v.is_empty()) {
        Some(_) => builder,
        None => builder.with_service_name("porten"),
    };
    builder
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn wanted(signal: Signal, pairs: &[(&str, &str)]) -> bool {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        otlp_wanted(signal, &|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn otlp_is_off_unless_an_endpoint_or_exporter_asks() {
        assert!(!wanted(Signal::Traces, &[]));
        assert!(!wanted(
            Signal::Traces,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]
        ));
        assert!(wanted(
            Signal::Traces,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]
        ));
        assert!(wanted(
            Signal::Metrics,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]
        ));
        assert!(wanted(Signal::Traces, &[("OTEL_TRACES_EXPORTER", "otlp")]));
    }

    #[test]
    fn signal_endpoints_and_exporters_are_per_signal() {
        let traces_only = [(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )];
        assert!(wanted(Signal::Traces, &traces_only));
        assert!(!wanted(Signal::Metrics, &traces_only));
        let no_metrics = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ];
        assert!(wanted(Signal::Traces, &no_metrics));
        assert!(!wanted(Signal::Metrics, &no_metrics));
    }

    #[test]
    fn the_sdk_switch_turns_everything_off() {
        let disabled = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ];
        assert!(!wanted(Signal::Traces, &disabled));
        assert!(!wanted(Signal::Metrics, &disabled));
    }
}
