//! The instruments the proxy records into, created once from the global meter.

use std::sync::LazyLock;

use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;

/// Seconds, for request durations (the HTTP semantic conventions' advice).
const REQUEST_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
    120.0,
];
/// Seconds, for time to first token (the GenAI conventions' advice).
const FIRST_TOKEN_SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Seconds, for time per output token (the GenAI conventions' advice).
const TOKEN_SECONDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// Tokens per second: CPUs make single digits, GPUs hundreds.
const TOKENS_PER_SECOND: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0,
];
/// Seconds, for model loads: tiny models take milliseconds, 70B ones minutes.
const LOAD_SECONDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Every instrument of the proxy.
pub(crate) struct Instruments {
    /// `porten.requests`: answered requests by route, status and model.
    pub requests: Counter<u64>,
    /// `http.server.request.duration`: from the request's arrival to the end of its answer
    /// (of the stream, for streamed answers).
    pub request_duration: Histogram<f64>,
    /// `gen_ai.server.request.duration`: the same for model requests, by operation and model.
    pub generation_duration: Histogram<f64>,
    /// `gen_ai.server.time_to_first_token`: from arrival to the first streamed token.
    pub time_to_first_token: Histogram<f64>,
    /// `gen_ai.server.time_per_output_token`: the pace after the first token.
    pub time_per_output_token: Histogram<f64>,
    /// `porten.tokens`: prompt (`input`) and generated (`output`) tokens by model.
    pub tokens: Counter<u64>,
    /// `porten.generation.speed`: generated tokens per second of one answer.
    pub generation_speed: Histogram<f64>,
    /// `porten.queue.wait`: from arrival until the model took the request (loading included).
    pub queue_wait: Histogram<f64>,
    /// `porten.prompt.check.duration`: tokenizing the prompt for the context-length check,
    /// porten's own work before the engine takes a request.
    pub prompt_check: Histogram<f64>,
    /// `porten.model.load.duration`: model loads by model and outcome.
    pub load_duration: Histogram<f64>,
    /// `porten.model.unloads`: unloads by model and reason.
    pub unloads: Counter<u64>,
    /// `porten.policy.decisions`: placement decisions by policy and outcome.
    pub policy_decisions: Counter<u64>,
    /// `porten.connections.open`: client connections open now.
    pub connections_open: UpDownCounter<i64>,
    /// `porten.connections.refused`: connections turned away at the cap.
    pub connections_refused: Counter<u64>,
    /// `porten.connections.closed`: connections porten closed, by reason (a timeout, or
    /// displaced at the cap); those the client closed are not counted.
    pub connections_closed: Counter<u64>,
}

/// The proxy's instruments. They bind to whichever meter provider is installed when this is
/// first called; the binary installs its provider before it serves.
pub(crate) fn instruments() -> &'static Instruments {
    static INSTRUMENTS: LazyLock<Instruments> =
        LazyLock::new(|| Instruments::new(&opentelemetry::global::meter(super::METER_NAME)));
    &INSTRUMENTS
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str, bounds: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(bounds.to_vec())
                .build()
        };
        Self {
            requests: meter
                .u64_counter("porten.requests")
                .with_unit("{request}")
                .with_description("Answered requests by route, status code and model")
                .build(),
            request_duration: seconds(
                "http.server.request.duration",
                "Duration of HTTP server requests, to the end of the body",
                REQUEST_SECONDS,
            ),
            generation_duration: seconds(
                "gen_ai.server.request.duration",
                "Generative AI server request duration, to the last token",
                REQUEST_SECONDS,
            ),
            time_to_first_token: seconds(
                "gen_ai.server.time_to_first_token",
                "Time to generate the first token of a streamed answer",
                FIRST_TOKEN_SECONDS,
            ),
            time_per_output_token: seconds(
                "gen_ai.server.time_per_output_token",
                "Time per output token after the first",
                TOKEN_SECONDS,
            ),
            tokens: meter
                .u64_counter("porten.tokens")
                .with_unit("{token}")
                .with_description("Tokens read (input) and generated (output) by model")
                .build(),
            generation_speed: meter
                .f64_histogram("porten.generation.speed")
                .with_unit("{token}/s")
                .with_description("Generated tokens per second of one answer")
                .with_boundaries(TOKENS_PER_SECOND.to_vec())
                .build(),
            queue_wait: seconds(
                "porten.queue.wait",
                "Time a request waited for its model (its load included)",
                REQUEST_SECONDS,
            ),
            prompt_check: seconds(
                "porten.prompt.check.duration",
                "Time spent tokenizing the prompt for the context-length check",
                FIRST_TOKEN_SECONDS,
            ),
            load_duration: seconds(
                "porten.model.load.duration",
                "Model load duration by outcome",
                LOAD_SECONDS,
            ),
            unloads: meter
                .u64_counter("porten.model.unloads")
                .with_unit("{unload}")
                .with_description("Model unloads by reason")
                .build(),
            policy_decisions: meter
                .u64_counter("porten.policy.decisions")
                .with_unit("{decision}")
                .with_description("Placement and eviction policy decisions, by outcome")
                .build(),
            connections_open: meter
                .i64_up_down_counter("porten.connections.open")
                .with_unit("{connection}")
                .with_description("Client connections open now")
                .build(),
            connections_refused: meter
                .u64_counter("porten.connections.refused")
                .with_unit("{connection}")
                .with_description("Connections refused at the connection cap")
                .build(),
            connections_closed: meter
                .u64_counter("porten.connections.closed")
                .with_unit("{connection}")
                .with_description("Connections porten closed, by reason")
                .build(),
        }
    }
}

/// How a policy's answer was used.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PolicyOutcome {
    /// The policy's answer was valid and acted on.
    Accepted,
    /// The answer was refused; the built-in policy decided. The cause says why.
    Fallback(&'static str),
}

impl Instruments {
    /// Counts one connection porten closed, for `reason` (`http::connections::CloseReason`).
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed.add(
            1,
            &[KeyValue::new("porten.connection.close_reason", reason)],
        );
    }

    /// Counts one placement decision of `policy`.
    pub fn placement_decision(&self, policy: &str, outcome: PolicyOutcome) {
        let (outcome, cause) = match outcome {
            PolicyOutcome::Accepted => ("accepted", "none"),
            PolicyOutcome::Fallback(cause) => ("fallback", cause),
        };
        self.policy_decisions.add(
            1,
            &[
                KeyValue::new("porten.policy.kind", "placement"),
                KeyValue::new("porten.policy.name", policy.to_string()),
                KeyValue::new("porten.policy.outcome", outcome),
                KeyValue::new("porten.policy.fallback_cause", cause),
            ],
        );
    }
}
