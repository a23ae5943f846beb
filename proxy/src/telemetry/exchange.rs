//! One request's telemetry. The handlers tell it what they learn (the model, the tokens, when
//! the first token left); when the last holder drops it (the request handler for a plain answer,
//! the streaming task for a stream) it records the metrics and closes the span. So a streamed
//! answer is measured to its last event, not to its headers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use super::instruments::instruments;

/// A request in flight, as telemetry sees it. Cheap to clone; every clone is the same record.
#[derive(Clone)]
pub struct Exchange(Arc<Inner>);

struct Inner {
    span: tracing::Span,
    started: Instant,
    method: http::Method,
    route: &'static str,
    facts: Mutex<Facts>,
}

#[derive(Default)]
struct Facts {
    status: Option<u16>,
    error_type: Option<&'static str>,
    operation: Option<&'static str>,
    model: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    waited: Option<Duration>,
    prompt_check: Option<Duration>,
    first_token: Option<Duration>,
}

impl Exchange {
    /// Starts the record of a request that arrived now. `route` is the route template (bounded
    /// cardinality: `/v1/models/{model}`, never the raw path).
    pub fn start(span: tracing::Span, method: http::Method, route: &'static str) -> Self {
        Self(Arc::new(Inner {
            span,
            started: Instant::now(),
            method,
            route,
            facts: Mutex::default(),
        }))
    }

    /// The request's span, to run its spawned work (a stream) in.
    pub fn span(&self) -> &tracing::Span {
        &self.0.span
    }

    /// The request is a model operation (`chat`, `text_completion`, `embeddings`) on `model`,
    /// a configured model: unknown names are left out so clients cannot grow the label set.
    pub fn operation(&self, operation: &'static str, model: &str) {
        self.0
            .span
            .record("gen_ai.operation.name", operation)
            .record("gen_ai.request.model", model);
        let mut facts = self.facts();
        facts.operation = Some(operation);
        facts.model = Some(model.to_string());
    }

    /// The model took the request now (it waited in the queue, and for the load, until now).
    pub fn admitted(&self) {
        let waited = self.0.started.elapsed();
        self.0
            .span
            .record("porten.queue_wait_s", waited.as_secs_f64());
        self.facts().waited = Some(waited);
    }

    /// The context-length check tokenized a prompt of this request in `took` (a request with
    /// several prompts adds them up): porten's own work before the engine takes the job.
    pub fn prompt_checked(&self, took: Duration) {
        let mut facts = self.facts();
        let total = facts.prompt_check.unwrap_or_default() + took;
        facts.prompt_check = Some(total);
        self.0
            .span
            .record("porten.prompt_check_s", total.as_secs_f64());
    }

    /// A token is on its way to the client; only the first call counts.
    pub fn token_sent(&self) {
        let mut facts = self.facts();
        if facts.first_token.is_none() {
            let after = self.0.started.elapsed();
            facts.first_token = Some(after);
            self.0
                .span
                .record("porten.time_to_first_token_s", after.as_secs_f64());
        }
    }

    /// The tokens the answer read (when the engine said) and generated.
    pub fn usage(&self, input: Option<usize>, output: usize) {
        if let Some(input) = input {
            self.0
                .span
                .record("gen_ai.usage.input_tokens", input as i64);
        }
        self.0
            .span
            .record("gen_ai.usage.output_tokens", output as i64);
        let mut facts = self.facts();
        facts.input_tokens = input.map(|n| n as u64);
        facts.output_tokens = Some(output as u64);
    }

    /// The status the client got, and the error's kind when it is an error.
    pub fn respond(&self, status: u16, error_type: Option<&'static str>) {
        self.0
            .span
            .record("http.response.status_code", i64::from(status));
        let mut facts = self.facts();
        facts.status = Some(status);
        if error_type.is_some() {
            facts.error_type = error_type;
        }
    }

    /// The answer failed after its headers were sent (a stream broke off, or the client left).
    pub fn failed_midway(&self, error_type: &'static str) {
        self.facts().error_type = Some(error_type);
    }

    fn facts(&self) -> std::sync::MutexGuard<'_, Facts> {
        self.0.facts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let facts = std::mem::take(self.facts.get_mut().unwrap_or_else(|e| e.into_inner()));
        let status = facts.status.unwrap_or(500);
        if let Some(error_type) = facts.error_type {
            self.span.record("error.type", error_type);
        }
        if status >= 500 || (facts.error_type.is_some() && status < 400) {
            self.span.record("otel.status_code", "ERROR");
        }
        let meters = instruments();
        let status_attr = KeyValue::new("http.response.status_code", i64::from(status));
        let route_attr = KeyValue::new("http.route", self.route);
        let mut request_attrs = vec![route_attr.clone(), status_attr.clone()];
        if let Some(model) = &facts.model {
            request_attrs.push(KeyValue::new("gen_ai.request.model", model.clone()));
        }
        meters.requests.add(1, &request_attrs);
        let mut http_attrs = vec![
            KeyValue::new("http.request.method", self.method.as_str().to_string()),
            route_attr,
            status_attr,
        ];
        if let Some(error_type) = facts.error_type {
            http_attrs.push(KeyValue::new("error.type", error_type));
        }
        meters
            .request_duration
            .record(elapsed.as_secs_f64(), &http_attrs);
        let (Some(operation), Some(model)) = (facts.operation, facts.model) else {
            return;
        };
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", model),
        ];
        if let Some(waited) = facts.waited {
            meters.queue_wait.record(waited.as_secs_f64(), &attrs);
        }
        if let Some(checked) = facts.prompt_check {
            meters.prompt_check.record(checked.as_secs_f64(), &attrs);
        }
        for (kind, count) in [
            ("input", facts.input_tokens),
            ("output", facts.output_tokens),
        ] {
            if let Some(count) = count.filter(|c| *c > 0) {
                let mut token_attrs = attrs.clone();
                token_attrs.push(KeyValue::new("gen_ai.token.type", kind));
                meters.tokens.add(count, &token_attrs);
            }
        }
        if let Some(first) = facts.first_token {
            meters
                .time_to_first_token
                .record(first.as_secs_f64(), &attrs);
        }
        if let Some(output) = facts.output_tokens.filter(|n| *n > 0) {
            // Generation starts at the first token of a stream, at admission otherwise (a
            // plain answer's time then includes reading the prompt).
            let from = facts.first_token.or(facts.waited).unwrap_or_default();
            let generating = elapsed.saturating_sub(from).as_secs_f64();
            let after_first = if facts.first_token.is_some() {
                output - 1
            } else {
                output
            };
            if after_first > 0 && generating > 0.0 {
                meters
                    .time_per_output_token
                    .record(generating / after_first as f64, &attrs);
                meters
                    .generation_speed
                    .record(after_first as f64 / generating, &attrs);
            }
        }
        if let Some(error_type) = facts.error_type {
            attrs.push(KeyValue::new("error.type", error_type));
        }
        meters
            .generation_duration
            .record(elapsed.as_secs_f64(), &attrs);
    }
}
