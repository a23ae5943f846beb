//! The memory budget end to end against the real binary and real models: estimates against
//! measured memory, models that fit only some at a time, idle unload, never-fitting models,
//! and the admin endpoints.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::{get, post_json, send};
use support::server::Porten;

const MIB: u64 = 1 << 20;

/// Anonymous resident memory of process `pid` (what a loaded model adds to).
fn anon_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    let kib: u64 = line["RssAnon:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A configuration file declaring `models` as (id, path, extra TOML lines).
fn config_file(dir: &Path, models: &[(&str, &Path, &str)], memory: &str) -> PathBuf {
    let mut text = format!("[memory]\n{memory}\n");
    for (id, path, extra) in models {
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\npath = \"{}\"\n{extra}\n",
            path.display()
        ));
    }
    let file = dir.join("porten.toml");
    std::fs::write(&file, text).unwrap();
    file
}

struct Models {
    dir: tempfile::TempDir,
}

impl Models {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A tiny random chat model of its own (models from one directory would share an alias).
    fn chat(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        support::fixtures::write_tiny_chat_model(&path);
        path
    }

    fn embedding(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        support::fixtures::write_tiny_embedding_model(&path);
        path
    }
}

fn serve(config: &Path, extra: &[&str]) -> Porten {
    let config = config.display().to_string();
    let mut args = vec!["--config", config.as_str()];
    args.extend_from_slice(extra);
    Porten::start(&args)
}

fn chat(server: &Porten, model: &str, content: &str, max_tokens: u64) -> support::http::Answer {
    post_json(
        server.addr,
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": content}]}),
        &[],
    )
}

fn model_info(server: &Porten, id: &str) -> Value {
    let answer = get(server.addr, &format!("/v1/models/{id}"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn status(server: &Porten) -> Value {
    get(server.addr, "/admin/status").json()
}

fn events(server: &Porten) -> Vec<Value> {
    get(server.addr, "/admin/events").json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A prompt of roughly `tokens` tokens for any of the test tokenizers (words of a few letters).
/// About `tokens` tokens of SmolLM2's (two a word).
fn long_prompt(tokens: usize) -> String {
    let words = [
        "river", "stone", "quiet", "lamp", "green", "field", "north", "cloud",
    ];
    (0..tokens / 2)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each model is loaded alone in a fresh server, sized for 512 tokens and one sequence, and
/// then given a prompt that fills its context. The estimate must cover what the process
/// really took, and not by more than a quarter (4 MiB for the tiny models).
#[test]
fn estimates_cover_measured_memory_and_are_at_most_a_quarter_above() {
    let models = Models::new();
    let tiny = models.chat("tiny");
    let embed = models.embedding("tiny-embed");
    let smollm2 = support::smollm2();
    let cases: [(&str, &Path, &str); 3] = [
        ("tiny", &tiny, "chat"),
        ("tiny-embed", &embed, "embedding"),
        ("smollm2", &smollm2, "chat"),
    ];
    let mut report = Vec::new();
    for (id, path, kind) in cases {
        let home = tempfile::tempdir().unwrap();
        let config = config_file(
            home.path(),
            &[(id, path, "context_length = 512\nmax_concurrency = 1")],
            "",
        );
        let server = serve(&config, &[]);
        let before = anon_bytes(server.pid());
        // About 440 tokens with the chat template and 24 to answer: nearly the whole 512. The
        // tiny models read one byte a token, so their prompt is a third as long in words; a
        // prompt past the context would be refused.
        let prompt = long_prompt(if id.starts_with("tiny") { 146 } else { 440 });
        let answer = if kind == "chat" {
            chat(&server, id, &prompt, 24)
        } else {
            post_json(
                server.addr,
                "/v1/embeddings",
                &json!({"model": id, "input": prompt}),
                &[],
            )
        };
        assert_eq!(answer.status, 200, "{id}: {}", answer.text());
        let used = anon_bytes(server.pid()).saturating_sub(before);
        let info = model_info(&server, id);
        let estimate = info["estimated_bytes"].as_u64().unwrap();
        let measured_at_load = info["measured_bytes"].as_u64().unwrap();
        report.push(format!(
            "{id}: estimate {} MiB, measured at load {} MiB, after a full context {} MiB",
            estimate / MIB,
            measured_at_load / MIB,
            used / MIB
        ));
        assert!(
            estimate >= used && estimate >= measured_at_load,
            "{id}: the estimate is below what was measured\n{}",
            report.join("\n")
        );
        // A tiny model's whole run takes 2-4 MiB, and the allocator alone moves that by a MiB or
        // two from run to run: a quarter of it is noise, so they get 4 MiB of room instead.
        let ceiling = (used as f64 * 1.25).max((used + 4 * MIB) as f64);
        assert!(
            estimate as f64 <= ceiling,
            "{id}: the estimate is more than 25% (or 4 MiB) above what was measured\n{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// Estimates of the tiny models as served with `extra` model settings, read from a server
/// without a budget (so the budget of the real test can be set between one and two models).
fn tiny_estimate(path: &Path, extra: &str) -> u64 {
    let home = tempfile::tempdir().unwrap();
    let config = config_file(home.path(), &[("probe", path, extra)], "");
    let server = serve(&config, &[]);
    model_info(&server, "probe")["estimated_bytes"]
        .as_u64()
        .unwrap()
}

/// Four models, a budget for two: interleaved concurrent requests are all answered, models
/// are swapped in and out, and the scheduler's own log never shows more reserved than the
/// budget.
#[test]
fn a_budget_for_two_of_four_models_answers_every_interleaved_request() {
    let models = Models::new();
    let paths = [
        models.chat("a"),
        models.chat("b"),
        models.chat("c"),
        models.embedding("e"),
    ];
    let settings = "context_length = 512\nmax_concurrency = 2";
    let largest = paths
        .iter()
        .map(|p| tiny_estimate(p, settings))
        .max()
        .unwrap();
    let budget_mb = (largest * 5 / 2).div_ceil(MIB);
    let home = tempfile::tempdir().unwrap();
    let ids = ["a", "b", "c", "e"];
    let declared: Vec<(&str, &Path, &str)> = ids
        .iter()
        .zip(&paths)
        .map(|(id, p)| (*id, p.as_path(), settings))
        .collect();
    let config = config_file(
        home.path(),
        &declared,
        &format!("budget_mb = {budget_mb}\nkeep_alive = -1"),
    );
    let server = serve(&config, &[]);
    let addr = server.addr;
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..8 {
                    let id = ["a", "b", "c", "e"][(worker * 3 + i * (worker + 1)) % 4];
                    let answer = if id == "e" {
                        post_json(
                            addr,
                            "/v1/embeddings",
                            &json!({"model": id, "input": "hello"}),
                            &[],
                        )
                    } else {
                        post_json(
                            addr,
                            "/v1/chat/completions",
                            &json!({"model": id, "max_tokens": 4,
                                    "messages": [{"role": "user", "content": "hi"}]}),
                            &[],
                        )
                    };
                    statuses.push((id, answer.status, answer.text()));
                }
                statuses
            })
        })
        .collect();
    for worker in workers {
        for (id, status, body) in worker.join().unwrap() {
            assert_eq!(status, 200, "{id}: {body}");
        }
    }
    let budget = budget_mb * MIB;
    let log = events(&server);
    for event in &log {
        assert!(
            event["reserved_bytes"].as_u64().unwrap() <= budget,
            "over budget: {event}"
        );
    }
    let evictions = log
        .iter()
        .filter(|e| e["event"] == "unload_started" && e["reason"] == "evicted")
        .count();
    assert!(evictions > 0, "four models in a budget for two: {log:#?}");
    for id in ids {
        assert!(
            log.iter()
                .any(|e| e["event"] == "loaded" && e["model"] == id),
            "{id} was never loaded"
        );
    }
    let status = status(&server);
    assert_eq!(status["budget_bytes"].as_u64(), Some(budget));
    assert!(status["reserved_bytes"].as_u64().unwrap() <= budget);
}

/// The global keep-alive unloads an idle model on time; `-1` per model keeps one; a request's
/// own `keep_alive: 0` unloads right after it.
#[test]
fn idle_models_unload_when_their_keep_alive_runs_out() {
    let models = Models::new();
    let (short, forever, once) = (
        models.chat("short"),
        models.chat("forever"),
        models.chat("once"),
    );
    let home = tempfile::tempdir().unwrap();
    let config = config_file(
        home.path(),
        &[
            ("short", &short, ""),
            ("forever", &forever, "keep_alive = -1"),
            ("once", &once, ""),
        ],
        "keep_alive = \"1s\"",
    );
    let server = serve(&config, &[]);
    assert_eq!(chat(&server, "short", "hi", 2).status, 200);
    let finished = Instant::now();
    assert_eq!(chat(&server, "forever", "hi", 2).status, 200);
    let answer = post_json(
        server.addr,
        "/v1/chat/completions",
        &json!({"model": "once", "max_tokens": 2, "keep_alive": 0,
                "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let once_done = Instant::now();
    wait_until("`once` to unload", 5, || {
        model_info(&server, "once")["state"] == "available"
    });
    assert!(
        once_done.elapsed() < Duration::from_millis(900),
        "keep_alive 0 took {:?}",
        once_done.elapsed()
    );
    assert_eq!(model_info(&server, "short")["state"], "loaded");
    wait_until("`short` to unload", 5, || {
        model_info(&server, "short")["state"] == "available"
    });
    let idle = finished.elapsed();
    assert!(
        idle >= Duration::from_millis(1000) && idle < Duration::from_millis(2500),
        "a 1 s keep-alive unloaded after {idle:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(model_info(&server, "forever")["state"], "loaded");
    let reasons: Vec<Value> = events(&server)
        .into_iter()
        .filter(|e| e["event"] == "unloaded")
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("idle"), json!("idle")]);
}

/// A model bigger than the whole budget is refused at once with the numbers, and the others
/// keep serving.
#[test]
fn a_model_larger_than_the_budget_is_refused_at_once_with_the_numbers() {
    let models = Models::new();
    let tiny = models.chat("tiny");
    let smollm2 = support::smollm2();
    let home = tempfile::tempdir().unwrap();
    let config = config_file(
        home.path(),
        &[
            ("smollm2", &smollm2, ""),
            ("tiny", &tiny, "context_length = 512"),
        ],
        "budget_mb = 100",
    );
    let server = serve(&config, &[]);
    let started = Instant::now();
    let refused = chat(&server, "smollm2", "hi", 2);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refusing took {:?}",
        started.elapsed()
    );
    assert_eq!(refused.status, 507, "{}", refused.text());
    let error = &refused.json()["error"];
    assert_eq!(error["code"], "model_too_large");
    let message = error["message"].as_str().unwrap();
    let need_mib = model_info(&server, "smollm2")["estimated_bytes"]
        .as_u64()
        .unwrap()
        .div_ceil(MIB);
    assert!(
        message.contains(&format!("needs {need_mib} MiB")) && message.contains("budget is 100 MiB"),
        "{message}"
    );
    assert_eq!(model_info(&server, "smollm2")["state"], "available");
    assert_eq!(chat(&server, "tiny", "hi", 2).status, 200);
    assert!(events(&server)
        .iter()
        .any(|e| e["event"] == "refused" && e["model"] == "smollm2"));
}

/// Requests that arrive while a model loads wait in its bounded queue and are served by that
/// one load; past the queue they get 503 with Retry-After.
#[test]
fn requests_during_a_load_wait_for_it_and_a_full_queue_says_retry_later() {
    let smollm2 = support::smollm2();
    let home = tempfile::tempdir().unwrap();
    let config = config_file(
        home.path(),
        &[(
            "smollm2",
            &smollm2,
            "max_concurrency = 2\nmax_queue = 1\ncontext_length = 512",
        )],
        "",
    );
    let server = serve(&config, &[]);
    let addr = server.addr;
    let requests: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 30));
                let answer = post_json(
                    addr,
                    "/v1/chat/completions",
                    &json!({"model": "smollm2", "max_tokens": 3,
                            "messages": [{"role": "user", "content": "hi"}]}),
                    &[],
                );
                (
                    answer.status,
                    answer.header("retry-after").map(str::to_string),
                    answer.text(),
                )
            })
        })
        .collect();
    let mut saw_loading = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match model_info(&server, "smollm2")["state"].as_str().unwrap() {
            "loading" => saw_loading = true,
            "loaded" => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let answers: Vec<_> = requests.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(saw_loading, "the model was never seen loading");
    let served = answers.iter().filter(|a| a.0 == 200).count();
    let refused: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!((served, refused.len()), (3, 1), "{answers:#?}");
    // Nothing has finished during the load, so the estimate is its fallback: 2 s per request
    // per slot, for the one queued ahead and the refused one itself (2 slots).
    assert_eq!(refused[0].1.as_deref(), Some("2"));
    assert!(
        refused[0].2.contains("model_overloaded"),
        "{}",
        refused[0].2
    );
    assert_eq!(status(&server)["models"][0]["loads"], 1);
}

/// `POST /admin/models/{id}/load` and `/unload`, behind the API key like `/v1`.
#[test]
fn admin_endpoints_load_and_unload_models_behind_the_api_key() {
    let models = Models::new();
    let tiny = models.chat("tiny");
    let home = tempfile::tempdir().unwrap();
    let config = config_file(home.path(), &[("tiny", &tiny, "")], "");
    let server = serve(&config, &["--api-key", "sesame"]);
    let key = [("authorization", "Bearer sesame")];
    let admin = |method: &str, path: &str, headers: &[(&str, &str)]| {
        send(server.addr, method, path, headers, b"")
    };
    assert_eq!(admin("POST", "/admin/models/tiny/load", &[]).status, 401);
    assert_eq!(admin("GET", "/admin/status", &[]).status, 401);
    assert_eq!(admin("GET", "/admin/models/tiny/load", &key).status, 405);
    assert_eq!(admin("POST", "/admin/models/nope/load", &key).status, 404);
    let loaded = admin("POST", "/admin/models/tiny/load", &key);
    assert_eq!(loaded.status, 200, "{}", loaded.text());
    let listed = send(server.addr, "GET", "/v1/models", &key, b"").json();
    let model = &listed["data"][0];
    assert_eq!(model["state"], "loaded");
    assert!(model["measured_bytes"].as_u64().is_some(), "{model}");
    assert!(model["estimated_bytes"].as_u64().unwrap() > 0);
    let status = admin("GET", "/admin/status", &key).json();
    assert_eq!(status["models"][0]["loads"], 1);
    assert!(status["reserved_bytes"].as_u64().unwrap() > 0);
    let unloaded = admin("POST", "/admin/models/tiny/unload", &key);
    assert_eq!(unloaded.status, 200, "{}", unloaded.text());
    let status = admin("GET", "/admin/status", &key).json();
    assert_eq!(status["models"][0]["state"], "available");
    assert_eq!(status["reserved_bytes"], 0);
}

fn porten(home: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_porten"))
        .args(args)
        .env("PORTEN_HOME", home)
        .env_remove("PORTEN_VRAM_BUDGET_MB")
        .output()
        .unwrap()
}

/// `porten fit ARGS --json`, which must succeed.
fn fit_json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["fit", "--json"];
    all.extend_from_slice(args);
    let out = porten(home, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `porten fit` on a hypothetical model and on a store model, as JSON for scripts.
#[test]
fn fit_sizes_hypothetical_and_store_models() {
    let home = tempfile::tempdir().unwrap();
    let report = fit_json(
        home.path(),
        &[
            "--params",
            "32B",
            "--quant",
            "q4_k_m",
            "--ctx",
            "32768",
            "--parallel",
            "1",
            "--vram-mb",
            "24576",
        ],
    );
    assert_eq!(report["budget_bytes"], 24576 * MIB);
    let model = &report["models"][0];
    let gb = |v: &Value| v.as_u64().unwrap() as f64 / 1e9;
    assert!((18.0..=20.0).contains(&gb(&model["weights"])), "{model}");
    // 64 layers x 8 KV heads x 128 x 2 (K and V) x 32768 tokens, at the CPU's 4 bytes.
    assert_eq!(model["kv_cache"], 2u64 * 64 * 8 * 128 * 32768 * 4);
    assert_eq!(model["fits"], false);
    assert!(model["headroom"].as_i64().unwrap() < 0);
    assert!(model["contexts_that_fit"]
        .as_array()
        .unwrap()
        .contains(&json!(4096)));
    assert_eq!(model["assumed_architecture"], true);

    let smollm2 = support::smollm2();
    let imported = porten(
        home.path(),
        &["import", smollm2.to_str().unwrap(), "--name", "smollm2"],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let report = fit_json(
        home.path(),
        &[
            "smollm2",
            "--vram-mb",
            "4096",
            "--ctx",
            "512",
            "--parallel",
            "1",
        ],
    );
    let model = &report["models"][0];
    assert_eq!(model["name"], "smollm2");
    assert_eq!(model["trained_context"], 8192);
    assert_eq!(model["assumed_architecture"], false);
    assert_eq!(model["fits"], true);
    // The same number the server charges for the model with these settings.
    let config = config_file(
        home.path(),
        &[(
            "smollm2",
            &smollm2,
            "context_length = 512\nmax_concurrency = 1",
        )],
        "",
    );
    let server = serve(&config, &[]);
    assert_eq!(
        model_info(&server, "smollm2")["estimated_bytes"],
        model["total"]
    );

    let table = porten(home.path(), &["fit", "smollm2", "--vram-mb", "100"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("smollm2") && text.contains(" no ") && text.contains("contexts that fit"),
        "{text}"
    );
    let unknown = porten(home.path(), &["fit", "--params", "7B", "--quant", "q9"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown quantization `q9`"));
}
