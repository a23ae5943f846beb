//! What tracing and metrics cost a small request: requests/s and p50 latency of a one-token,
//! non-streaming chat on a tiny model, against a server with traces and metrics exported over
//! OTLP (gRPC, to a collector in this process) and `/metrics` on, and against one with all of
//! it off. Rounds alternate between the two servers so drift hits both alike; prints the ratio.
//!
//! `cargo bench --bench telemetry` (BENCH_ROUNDS, BENCH_SECS, BENCH_CLIENTS to change the run).

mod common;
#[allow(dead_code)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::time::Duration;

use common::load::{interleaved, measure};
use common::{env_usize, Porten};
use fake_opentelemetry_collector::FakeCollectorServer;

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 6);
    let secs = env_usize("BENCH_SECS", 4) as f64;
    let clients = env_usize("BENCH_CLIENTS", 4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut collector = runtime.block_on(FakeCollectorServer::start()).unwrap();
    let endpoint = collector.endpoint();
    // Drain the collector, as a real one would: it stops accepting when its buffer is full.
    runtime.spawn(async move {
        loop {
            collector
                .exported_spans(10_000, Duration::from_millis(100))
                .await;
            collector
                .exported_metrics(10_000, Duration::from_millis(1))
                .await;
        }
    });

    let models = tempfile::tempdir().unwrap();
    let tiny = models.path().join("tiny");
    fixtures::write_tiny_chat_model(&tiny);
    let model = format!("tiny={}", tiny.display());
    let (home_on, home_off) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
    std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "1000");
    let on = Porten::start(home_on.path(), &["--model".as_ref(), model.as_ref()]);
    for name in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_METRIC_EXPORT_INTERVAL",
    ] {
        std::env::remove_var(name);
    }
    let off = Porten::start(
        home_off.path(),
        &["--model".as_ref(), model.as_ref(), "--no-metrics".as_ref()],
    );
    // Load the model and warm both servers up.
    for server in [&on, &off] {
        measure(server.addr, clients, 1.0);
    }

    let (with, without) = interleaved(rounds, |telemetry| {
        let server = if telemetry { &on } else { &off };
        measure(server.addr, clients, secs)
    });
    let (on_rate, on_p50) = (with.rate, with.p50_ms);
    let (off_rate, off_p50) = (without.rate, without.p50_ms);
    println!("telemetry overhead: 1-token chat on a tiny model, {clients} keep-alive clients, {rounds} rounds of {secs} s");
    println!("  telemetry off : {off_rate:8.1} req/s   p50 {off_p50:6.3} ms");
    println!("  telemetry on  : {on_rate:8.1} req/s   p50 {on_p50:6.3} ms   (OTLP traces + metrics, /metrics)");
    println!(
        "  ratio on/off  : {:.3}x requests/s, {:.3}x p50 latency (target >= 0.97x requests/s)",
        on_rate / off_rate,
        on_p50 / off_p50
    );
}
