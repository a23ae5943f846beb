//! Observability end to end against the real binary: spans arrive at real OTLP receivers (gRPC:
//! the `fake-opentelemetry-collector` crate; HTTP: `oteltap` from PyPI) with their parent/child
//! links and the caller's `traceparent`, `/metrics` parses as Prometheus text and its counters
//! move by exactly what the test did, and log lines carry the request id.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_opentelemetry_collector::{ExportedSpan, FakeCollectorServer};
use serde_json::{json, Value};
use support::http::{get, post_json};
use support::metrics::Scrape;
use support::server::Porten;

/// The caller's trace: a client span that porten's request span must hang under.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
}

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_tokens": 6,
        "messages": [{"role": "user", "content": "hello there"}],
    })
}

/// Tiny models on disk for one server, kept as long as the test needs them.
struct TinyModels {
    dir: tempfile::TempDir,
}

impl TinyModels {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        support::fixtures::write_tiny_chat_model(&dir.path().join("tiny"));
        support::fixtures::write_tiny_embedding_model(&dir.path().join("tiny-embed"));
        Self { dir }
    }

    fn flags(&self) -> Vec<String> {
        ["tiny", "tiny-embed"]
            .iter()
            .flat_map(|id| {
                let path = self.dir.path().join(id);
                ["--model".to_string(), format!("{id}={}", path.display())]
            })
            .collect()
    }

    fn serve(&self, extra: &[&str], env: &[(&str, &str)]) -> Porten {
        let mut args = self.flags();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Porten::start_with_env(&args, env);
        server.wait_ready();
        server
    }
}

/// An attribute of an exported span, as its plain value (`tiny`, `200`, `0.01`).
fn attr<'a>(span: &'a ExportedSpan, key: &str) -> Option<&'a str> {
    // The collector renders values as `Some(AnyValue { value: Some(StringValue("tiny")) })`.
    let debug = span.attributes.get(key)?;
    let inner = debug
        .strip_prefix("Some(AnyValue { value: Some(")?
        .strip_suffix(") })")?;
    let (_, value) = inner.split_once('(')?;
    let value = value.strip_suffix(')')?;
    Some(value.trim_matches('"'))
}

fn spans_until(
    runtime: &tokio::runtime::Runtime,
    collector: &mut FakeCollectorServer,
    seen: &mut Vec<ExportedSpan>,
    done: impl Fn(&[ExportedSpan]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(seen) && Instant::now() < deadline {
        seen.extend(runtime.block_on(collector.exported_spans(1, Duration::from_millis(200))));
    }
}

/// A streamed chat that arrives with a `traceparent` yields a server span in the caller's
/// trace, under the caller's span, with the model, status, tokens, queue wait and time to first
/// token; the model's load is a child of that request span.
#[test]
fn a_streamed_chat_joins_the_callers_trace_with_linked_spans() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut collector = runtime.block_on(FakeCollectorServer::start()).unwrap();
    let models = TinyModels::new();
    let endpoint = collector.endpoint();
    let server = models.serve(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_SERVICE_NAME", "porten-under-test"),
        ],
    );
    let answer = post_json(
        server.addr,
        "/v1/chat/completions",
        &chat("tiny", true),
        &[("traceparent", &traceparent())],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.events().last().unwrap(), "[DONE]");
    let request_id = answer.header("x-request-id").unwrap().to_string();

    let mut spans = Vec::new();
    spans_until(&runtime, &mut collector, &mut spans, |spans| {
        spans.iter().any(|s| s.name == "POST /v1/chat/completions")
            && spans.iter().any(|s| s.name == "model.load")
    });
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/chat/completions")
        .unwrap_or_else(|| panic!("no request span in {spans:#?}\n{}", server.log()));
    assert_eq!(
        request.trace_id, CLIENT_TRACE,
        "the caller's trace is joined"
    );
    assert_eq!(
        request.parent_span_id, CLIENT_SPAN,
        "under the caller's span"
    );
    assert_eq!(request.kind, "SPAN_KIND_SERVER");
    assert_eq!(attr(request, "id"), Some(request_id.as_str()));
    assert_eq!(attr(request, "http.request.method"), Some("POST"));
    assert_eq!(attr(request, "http.route"), Some("/v1/chat/completions"));
    assert_eq!(attr(request, "http.response.status_code"), Some("200"));
    assert_eq!(attr(request, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(attr(request, "gen_ai.request.model"), Some("tiny"));
    let output: i64 = attr(request, "gen_ai.usage.output_tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&output), "{request:#?}");
    let waited: f64 = attr(request, "porten.queue_wait_s")
        .unwrap()
        .parse()
        .unwrap();
    let first: f64 = attr(request, "porten.time_to_first_token_s")
        .unwrap()
        .parse()
        .unwrap();
    let checked: f64 = attr(request, "porten.prompt_check_s")
        .unwrap()
        .parse()
        .unwrap();
    let whole = (request.end_time_unix_nano - request.start_time_unix_nano) as f64 / 1e9;
    assert!(
        0.0 < waited && waited <= first && first <= whole,
        "queue wait {waited} s, first token {first} s, whole {whole} s"
    );
    // The context check runs after admission and before the engine's first token.
    assert!(
        0.0 < checked && waited + checked <= first,
        "queue wait {waited} s, prompt check {checked} s, first token {first} s"
    );

    let load = spans.iter().find(|s| s.name == "model.load").unwrap();
    assert_eq!(load.trace_id, CLIENT_TRACE);
    assert_eq!(
        load.parent_span_id, request.span_id,
        "the load hangs under the request"
    );
    assert_eq!(attr(load, "model"), Some("tiny"));
    assert!(load.start_time_unix_nano >= request.start_time_unix_nano);

    // A request without `traceparent` starts a trace of its own.
    let answer = post_json(server.addr, "/v1/models", &json!({}), &[]);
    assert_eq!(answer.status, 405);
    spans_until(&runtime, &mut collector, &mut spans, |spans| {
        spans.iter().any(|s| s.name == "POST /v1/models")
    });
    let refused = spans.iter().find(|s| s.name == "POST /v1/models").unwrap();
    assert_ne!(refused.trace_id, CLIENT_TRACE);
    assert!(refused.parent_span_id.is_empty());
    assert_eq!(attr(refused, "http.response.status_code"), Some("405"));
    assert_eq!(attr(refused, "error.type"), Some("method_not_allowed"));
}

/// `oteltap` (PyPI): an OTLP/HTTP protobuf receiver printing what it gets as NDJSON.
struct Oteltap {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Oteltap {
    fn start() -> Self {
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(&python)
            .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} -m oteltap (scripts/setup-test-deps.sh): {e}",
                    python.display()
                )
            });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if line.starts_with("Listening") {
                    let _ = ready_tx.send(());
                } else if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(value);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("oteltap did not start listening");
        Self { child, port, lines }
    }

    fn wait_for(&self, what: &str, found: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = self.lines.lock().unwrap().iter().find(|v| found(v)) {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "oteltap never received {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Oteltap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// With `http/protobuf`, the default protocol, spans and metrics reach an OTLP/HTTP receiver.
#[test]
fn spans_and_metrics_also_go_over_otlp_http() {
    let tap = Oteltap::start();
    let models = TinyModels::new();
    let endpoint = format!("http://127.0.0.1:{}", tap.port);
    let server = models.serve(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    let answer = post_json(
        server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny-embed", "input": "hello"}),
        &[("traceparent", &traceparent())],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let span = tap.wait_for("the embeddings span", |v| {
        v["name"] == "POST /v1/embeddings"
    });
    assert_eq!(span["traceId"], CLIENT_TRACE);
    assert_eq!(span["parentSpanId"], CLIENT_SPAN);
    let attrs: BTreeMap<String, Value> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
        .collect();
    assert_eq!(attrs["gen_ai.operation.name"]["stringValue"], "embeddings");
    assert_eq!(attrs["gen_ai.request.model"]["stringValue"], "tiny-embed");
    assert_eq!(
        attrs["gen_ai.usage.input_tokens"]["intValue"],
        answer.json()["usage"]["prompt_tokens"].to_string()
    );
    let requests = tap.wait_for("porten.requests", |v| {
        v["name"] == "porten.requests"
            && v["sum"]["dataPoints"].as_array().is_some_and(|points| {
                points.iter().any(|p| {
                    p["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|kv| kv["value"]["stringValue"] == "/v1/embeddings")
                })
            })
    });
    assert_eq!(requests["sum"]["isMonotonic"], true);
}

/// Counters move by exactly the requests, tokens, loads and evictions the test caused, in a
/// budget that holds one of the two models at a time.
#[test]
fn metrics_move_by_exactly_what_the_test_did() {
    let models = TinyModels::new();
    let estimates: Vec<u64> = {
        let probe = models.serve(&[], &[]);
        get(probe.addr, "/v1/models").json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["estimated_bytes"].as_u64().unwrap())
            .collect()
    };
    let largest = *estimates.iter().max().unwrap();
    let budget_mb = (largest * 3 / 2).div_ceil(1 << 20).to_string();
    let server = models.serve(&["--vram-budget-mb", &budget_mb, "--keep-alive", "-1"], &[]);
    let before = Scrape::of(&server);
    assert_eq!(before.value("porten_models_loaded", &[]), 0.0);
    assert_eq!(
        before.value("porten_memory_budget_bytes", &[]),
        budget_mb.parse::<f64>().unwrap() * (1 << 20) as f64
    );

    let chat_ok = [
        ("http_route", "/v1/chat/completions"),
        ("http_response_status_code", "200"),
    ];
    let (mut input, mut output) = (0.0, 0.0);
    for stream in [false, false, true] {
        let mut body = chat("tiny", stream);
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        let answer = post_json(server.addr, "/v1/chat/completions", &body, &[]);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let usage = if stream {
            // A stream's usage comes with its last chunk, when asked for.
            answer
                .events()
                .iter()
                .filter(|e| *e != "[DONE]")
                .map(|e| serde_json::from_str::<Value>(e).unwrap())
                .find(|e| !e["usage"].is_null())
                .expect("the usage chunk")["usage"]
                .clone()
        } else {
            answer.json()["usage"].clone()
        };
        input += usage["prompt_tokens"].as_f64().unwrap();
        output += usage["completion_tokens"].as_f64().unwrap();
    }
    let embedded = post_json(
        server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny-embed", "input": ["hello", "world"]}),
        &[],
    );
    assert_eq!(embedded.status, 200, "{}", embedded.text());
    let embed_tokens = embedded.json()["usage"]["prompt_tokens"].as_f64().unwrap();
    let unknown = post_json(
        server.addr,
        "/v1/chat/completions",
        &chat("no-such-model", false),
        &[],
    );
    assert_eq!(unknown.status, 404);
    // Back to chat: the embedding model is evicted for it, as chat was for the embeddings.
    let answer = post_json(
        server.addr,
        "/v1/chat/completions",
        &chat("tiny", false),
        &[],
    );
    assert_eq!(answer.status, 200);
    input += answer.json()["usage"]["prompt_tokens"].as_f64().unwrap();
    output += answer.json()["usage"]["completion_tokens"]
        .as_f64()
        .unwrap();

    let after = Scrape::of(&server);
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        after.value(metric, labels) - before.value(metric, labels)
    };
    let tiny = ("gen_ai_request_model", "tiny");
    assert_eq!(
        moved("porten_requests_total", &[chat_ok[0], chat_ok[1], tiny]),
        4.0
    );
    assert_eq!(
        moved(
            "porten_requests_total",
            &[chat_ok[0], ("http_response_status_code", "404")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "porten_requests_total",
            &[
                ("http_route", "/v1/embeddings"),
                ("gen_ai_request_model", "tiny-embed")
            ]
        ),
        1.0
    );
    assert_eq!(moved("http_server_request_duration_seconds", &chat_ok), 4.0);
    assert_eq!(
        moved(
            "http_server_request_duration_seconds",
            &[("error_type", "model_not_found")]
        ),
        1.0
    );
    assert_eq!(
        moved("gen_ai_server_time_to_first_token_seconds", &[tiny]),
        1.0
    );
    assert_eq!(
        moved("gen_ai_server_request_duration_seconds", &[tiny]),
        4.0
    );
    // Each chat request had its prompt counted once for the context check; embeddings have
    // no such check.
    assert_eq!(moved("porten_prompt_check_duration_seconds", &[tiny]), 4.0);
    assert_eq!(
        moved(
            "porten_prompt_check_duration_seconds",
            &[("gen_ai_request_model", "tiny-embed")]
        ),
        0.0
    );
    assert_eq!(
        moved(
            "porten_tokens_total",
            &[tiny, ("gen_ai_token_type", "input")]
        ),
        input
    );
    assert_eq!(
        moved(
            "porten_tokens_total",
            &[tiny, ("gen_ai_token_type", "output")]
        ),
        output
    );
    assert_eq!(
        moved(
            "porten_tokens_total",
            &[
                ("gen_ai_request_model", "tiny-embed"),
                ("gen_ai_token_type", "input")
            ]
        ),
        embed_tokens
    );
    // Two loads of tiny and one of tiny-embed; each swap evicted the other model.
    let loaded = ("porten_load_outcome", "loaded");
    assert_eq!(
        moved("porten_model_load_duration_seconds", &[tiny, loaded]),
        2.0
    );
    assert_eq!(
        moved(
            "porten_model_load_duration_seconds",
            &[("gen_ai_request_model", "tiny-embed"), loaded]
        ),
        1.0
    );
    let events = get(server.addr, "/admin/events").json()["events"].clone();
    let evictions = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "unload_started" && e["reason"] == "evicted")
        .count() as f64;
    assert_eq!(evictions, 2.0, "{events:#}");
    assert_eq!(
        moved(
            "porten_model_unloads_total",
            &[("porten_unload_reason", "evicted")]
        ),
        evictions
    );
    assert_eq!(
        moved(
            "porten_policy_decisions_total",
            &[
                ("porten_policy_kind", "placement"),
                ("porten_policy_outcome", "accepted")
            ]
        ),
        evictions
    );
    // Gauges tell the present: one model loaded, its reservation within the budget.
    let reserved = after.value("porten_memory_reserved_bytes", &[]);
    assert_eq!(after.value("porten_models_loaded", &[]), 1.0);
    assert!(reserved > 0.0 && reserved <= after.value("porten_memory_budget_bytes", &[]));
    assert_eq!(after.value("porten_model_queue_depth", &[tiny]), 0.0);
}

/// `--no-metrics`: nothing is recorded and `/metrics` says so.
#[test]
fn metrics_can_be_turned_off() {
    let models = TinyModels::new();
    let server = models.serve(&["--no-metrics"], &[]);
    let answer = get(server.addr, "/metrics");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["code"], "metrics_disabled");
    let on = models.serve(&[], &[("PORTEN_METRICS", "off")]);
    assert_eq!(get(on.addr, "/metrics").status, 404);
}

/// `--log-format json`: one JSON object per line, and every line logged while serving a
/// request (its model load included) carries the request's id.
#[test]
fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let models = TinyModels::new();
    let server = models.serve(&["--log-format", "json"], &[]);
    let answer = post_json(
        server.addr,
        "/v1/chat/completions",
        &chat("tiny", false),
        &[("x-request-id", "trace-me-42")],
    );
    assert_eq!(answer.status, 200);
    // `/ready` polls log "answered" too, and stderr is read by another thread: wait for the
    // line of this request, not any "answered".
    assert!(
        server.wait_for_log_line(10, |line| line.contains("\"answered\"")
            && line.contains("trace-me-42"))
    );
    let lines: Vec<Value> = server
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["id"] == "trace-me-42"))
        })
        .collect();
    let messages: Vec<&str> = ours
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"model loaded"), "{messages:?}");
    assert!(messages.contains(&"answered"), "{messages:?}");
    let porten_lines = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .unwrap()
                .starts_with("porten_proxy::models")
        })
        .count();
    assert_eq!(
        porten_lines,
        ours.iter()
            .filter(|l| l["target"]
                .as_str()
                .unwrap()
                .starts_with("porten_proxy::models"))
            .count(),
        "a model line without the request id"
    );
}
