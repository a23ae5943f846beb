//! Log lines: human-readable on a terminal, one JSON object per line for collectors. Every line
//! logged while a request is served carries its span, so its request id.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::registry::Registry;
use tracing_subscriber::Layer;

use crate::cli::LogFormat;

/// The log layer for `format`, writing to stderr.
pub fn log_layer(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer.fmt_fields(HumanFields).boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}

/// The default `key=value` fields, minus those only OpenTelemetry needs: `otel.*` (span name,
/// kind, status) and `http.route` (the path is there already).
struct HumanFields;

impl<'writer> FormatFields<'writer> for HumanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = HumanVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct HumanVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for HumanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("otel.") || field.name() == "http.route"
        {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{value:?}")
        } else {
            write!(self.writer, "{separator}{}={value:?}", field.name())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_lines_carry_the_request_id_and_leave_out_otel_fields() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(HumanFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                otel.name = "POST /v1/chat/completions",
                otel.kind = "server",
                id = %"req-1",
                status = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("status", 200);
            tracing::info!(ms = 1.5, "answered");
        });
        let line = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(
            line.contains("request{id=req-1 status=200}: "),
            "unexpected line: {line}"
        );
        assert!(line.contains("answered ms=1.5"), "unexpected line: {line}");
        assert!(!line.contains("otel"), "otel fields leaked: {line}");
    }
}
