//! porten against llama.cpp's `llama-server` (the engine Ollama runs) on the same GGUF files,
//! in one run: streamed chats over HTTP, interleaved so both see the same machine, 2 threads
//! each. Three shapes: (a) a fresh ~77-token prompt, (b) a fresh ~2,000-token prompt, (c) the
//! same ~2,000-token prefix again with a new last message (what a coding agent's next turn
//! sends). Decode tok/s, first-token time and the ratios, for SmolLM2's shipped Q4_1 and a Q8_0
//! made from it with llama-quantize.
//!
//! `cargo bench --bench cpu_speed` (in `scripts/bench.sh`). Env: `BENCH_RUNS` (default 3),
//! `BENCH_MAX_TOKENS` (default 64), `BENCH_DTYPE` (porten's `dtype`, default `auto`: F32
//! activations), `BENCH_FILES` (`q4_1,q8_0`), `BENCH_SHAPES` (`a,b,c`; c runs after b), `LLAMA_BIN` (default: built by
//! `scripts/fetch-llama-server.sh`), `PORTEN_SMOLLM2_GGUF`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{env_usize, median, script_path, smollm2, Porten, StreamRun as Run};
use serde_json::{json, Value};

const THREADS: &str = "2";

/// A `llama-server` on a free port, killed when dropped.
struct LlamaServer {
    child: Child,
    addr: SocketAddr,
}

impl LlamaServer {
    fn start(bin: &Path, gguf: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin.join("llama-server"))
            .arg("-m")
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", THREADS, "-tb", THREADS, "-c", "4096", "-np", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !health(addr) {
            assert!(Instant::now() < deadline, "llama-server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { child, addr }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether llama-server's `/health` says it is ready (it answers 503 while loading).
fn health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn
        .write_all(b"GET /health HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A paragraph of ordinary English, different for each `n`, so no two prompts share more than
/// the words a tokenizer would share anyway.
fn paragraph(n: usize) -> String {
    const SUBJECTS: [&str; 7] = [
        "The harbour master",
        "A young engineer",
        "The old lighthouse",
        "Our build server",
        "The night train",
        "A careful reviewer",
        "The city library",
    ];
    const VERBS: [&str; 5] = ["watched", "repaired", "described", "measured", "remembered"];
    const OBJECTS: [&str; 6] = [
        "the slow tide coming in",
        "every broken gear in the clock",
        "a storm that lasted three days",
        "the queue of waiting ships",
        "a bug nobody could reproduce",
        "the lamps along the pier",
    ];
    format!(
        "Note {n}: {} {} {}, and then wrote it down in a notebook numbered {}. ",
        SUBJECTS[n % 7],
        VERBS[(n / 7) % 5],
        OBJECTS[(n / 35) % 6],
        n * 7 + 3
    )
}

/// About `tokens` tokens of notes, starting at note `seed`.
fn notes(seed: usize, tokens: usize) -> String {
    // A note is ~25 tokens for SmolLM2's tokenizer.
    (0..tokens / 25).map(|i| paragraph(seed + i)).collect()
}

/// The shapes, each as chat messages.
enum Shape {
    /// (a) a fresh short prompt.
    Short,
    /// (b) a fresh long prompt.
    Long,
    /// (c) the long prompt of the (b) just before, with a new last message.
    LongAgain,
}

fn messages(shape: &Shape, run: usize) -> Value {
    match shape {
        Shape::Short => json!([
            {"role": "system", "content": format!("You are a helpful assistant. Session {run}.")},
            {"role": "user", "content": format!("{}Write a long story about it.", notes(1000 * run + 500, 50))},
        ]),
        Shape::Long | Shape::LongAgain => json!([
            {"role": "system", "content": notes(1000 * run, 1950)},
            // (c) differs from the (b) before it in this last message only.
            {"role": "user", "content": format!(
                "Question {}: write a long story about the notes above, in plain prose.",
                2 * run + usize::from(matches!(shape, Shape::LongAgain))
            )},
        ]),
    }
}

fn stream(addr: SocketAddr, model: &str, messages: &Value, max_tokens: usize) -> Run {
    let body = json!({"model": model, "stream": true, "temperature": 0, "max_tokens": max_tokens,
        "messages": messages})
    .to_string();
    Run::over_http(addr, "/v1/chat/completions", &body, |chunk| {
        chunk["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    })
}

/// The bin directory with llama-server and llama-quantize.
fn llama_bin() -> PathBuf {
    match std::env::var("LLAMA_BIN") {
        Ok(dir) => dir.into(),
        Err(_) => script_path("fetch-llama-server.sh"),
    }
}

/// `gguf` requantized to `kind` by llama-quantize, cached beside it.
fn requantized(bin: &Path, gguf: &Path, kind: &str) -> PathBuf {
    let out = gguf.with_file_name(format!("SmolLM2-135M-Instruct.{kind}.gguf"));
    if !out.exists() {
        let status = Command::new(bin.join("llama-quantize"))
            .arg("--allow-requantize")
            .arg(gguf)
            .arg(&out)
            .arg(kind)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "llama-quantize {kind}");
    }
    out
}

#[derive(Default)]
struct Figures {
    decode: Vec<f64>,
    first_token_ms: Vec<f64>,
}

impl Figures {
    fn add(&mut self, run: &Run) {
        self.decode.push(run.tok_per_s());
        self.first_token_ms.push(run.ttft.as_secs_f64() * 1e3);
    }
    fn medians(&self) -> (f64, f64) {
        (
            median(self.decode.clone()),
            median(self.first_token_ms.clone()),
        )
    }
}

fn bench_file(bin: &Path, gguf: &Path, label: &str, runs: usize, max_tokens: usize) {
    let home = tempfile::tempdir().unwrap();
    let dtype = std::env::var("BENCH_DTYPE").unwrap_or_else(|_| "auto".into());
    std::fs::write(
        home.path().join("porten.toml"),
        format!(
            "[[models]]\nid = \"smollm2\"\npath = {:?}\ndtype = \"{dtype}\"\n",
            gguf.display().to_string()
        ),
    )
    .unwrap();
    let porten = Porten::start(home.path(), &[]);
    let llama = LlamaServer::start(bin, gguf);
    // Warm both (porten loads the model on its first request).
    let warm = json!([{"role": "user", "content": "Hello"}]);
    stream(porten.addr, "smollm2", &warm, 4);
    stream(llama.addr, "smollm2", &warm, 4);

    let wanted = std::env::var("BENCH_SHAPES").unwrap_or_else(|_| "a,b,c".into());
    let shapes: Vec<(&str, Shape)> = [
        ("a", "(a) fresh 77-token prompt", Shape::Short),
        ("b", "(b) fresh 2,000-token prompt", Shape::Long),
        (
            "c",
            "(c) same 2,000-token prefix, new last message",
            Shape::LongAgain,
        ),
    ]
    .into_iter()
    .filter(|(key, _, _)| wanted.split(',').any(|w| w == *key))
    .map(|(_, name, shape)| (name, shape))
    .collect();
    let mut figures: Vec<(Figures, Figures)> = shapes.iter().map(|_| Default::default()).collect();
    for run in 1..=runs {
        for (i, (_, shape)) in shapes.iter().enumerate() {
            let messages = messages(shape, run);
            figures[i]
                .0
                .add(&stream(porten.addr, "smollm2", &messages, max_tokens));
            figures[i]
                .1
                .add(&stream(llama.addr, "smollm2", &messages, max_tokens));
        }
    }
    println!(
        "SmolLM2-135M {label}, porten dtype {dtype}, {runs} runs x {max_tokens} tokens, \
         {THREADS} threads, medians:"
    );
    for ((name, _), (p, l)) in shapes.iter().zip(&figures) {
        let ((p_tps, p_ttft), (l_tps, l_ttft)) = (p.medians(), l.medians());
        println!("  {name}");
        println!("    porten       : {p_tps:7.1} tok/s  first token {p_ttft:8.1} ms");
        println!("    llama-server : {l_tps:7.1} tok/s  first token {l_ttft:8.1} ms");
        println!(
            "    porten/llama : {:7.2}x decode    {:.2}x first-token time",
            p_tps / l_tps,
            p_ttft / l_ttft
        );
    }
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 3);
    let max_tokens = env_usize("BENCH_MAX_TOKENS", 64);
    let bin = llama_bin();
    let q4_1 = smollm2();
    let files = std::env::var("BENCH_FILES").unwrap_or_else(|_| "q4_1,q8_0".into());
    for file in files.split(',') {
        match file {
            "q4_1" => bench_file(&bin, &q4_1, "Q4_1 (as shipped)", runs, max_tokens),
            "q8_0" => {
                let q8_0 = requantized(&bin, &q4_1, "Q8_0");
                bench_file(&bin, &q8_0, "Q8_0 (llama-quantize)", runs, max_tokens)
            }
            other => panic!("BENCH_FILES: unknown file {other}"),
        }
    }
}
