//! What porten tells an operator: a span per request with its model, tokens and timings, and
//! metrics for requests, tokens, queues, loads and policy decisions.
//!
//! This crate uses the OpenTelemetry *API* only. Until the binary installs an SDK (tracer and
//! meter providers, see `porten::telemetry`), every span attribute and instrument here is a no-op,
//! which is what "off" means: no exporter, no aggregation, no cost beyond a function call.
//! Names follow the OpenTelemetry semantic conventions for HTTP and GenAI where one exists, and
//! `porten.*` otherwise.

mod exchange;
mod gauges;
mod instruments;
mod propagation;

pub use exchange::Exchange;
pub use gauges::register_model_gauges;
pub(crate) use instruments::{instruments, PolicyOutcome};
pub use propagation::adopt_remote_parent;

/// The instrumentation scope of every porten instrument (the crates share one meter).
pub const METER_NAME: &str = "porten";
