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
fn long_prompt(tokens: usize) -> String {
    let words = ["river", "stone", "quiet", "lamp", "green", "field", "north", "cloud"];
    (0..tokens / 2)
        .map(|i| words[i % words.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each model is loaded alone in a fresh server, sized for 512 tokens and one sequence, and
/// then given a prompt that fills its context. The estimate must cover what the process
/// really took, and not by more than a quarter.
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
        let prompt = long_prompt(440);
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
        assert!(
            estimate as f64 <= used as f64 * 1.25,
            "{id}: the estimate is more than 25% above what was measured\n{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}
