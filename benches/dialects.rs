//! The same prompt on SmolLM2, streamed through chat completions, the Responses API, the
//! Anthropic Messages API and Ollama's `/api/chat` of one porten, interleaved in one run: time
//! to first token and tokens/s of each, and the ratios to chat completions (targets: within
//! 1.02x on tokens/s, within 1 ms on the first token). Chat completions runs twice per round: the second row is
//! the control, whose distance from the first is what the machine's noise alone makes.
//!
//! `cargo bench --bench dialects` (or `bash scripts/bench.sh`). Env: `BENCH_RUNS` (default 5),
//! `BENCH_MAX_TOKENS` (default 64), `PORTEN_SMOLLM2_GGUF` (default: fetched).

mod common;

use std::net::SocketAddr;

use common::{env_usize, median, smollm2, Porten, StreamRun as Run};
use serde_json::{json, Value};

const PROMPT: &str = "Write a short story about a lighthouse keeper.";

#[derive(Clone, Copy)]
enum Dialect {
    Chat,
    /// Chat completions again: the control row, whose spread is the machine's noise.
    ChatAgain,
    Responses,
    Messages,
    Ollama,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Chat => "chat completions",
            Dialect::ChatAgain => "chat, again",
            Dialect::Responses => "responses",
            Dialect::Messages => "messages",
            Dialect::Ollama => "ollama /api/chat",
        }
    }

    fn request(self, max_tokens: usize) -> (&'static str, Value) {
        let messages = json!([{"role": "user", "content": PROMPT}]);
        match self {
            Dialect::Chat | Dialect::ChatAgain => (
                "/v1/chat/completions",
                json!({"model": "smollm2", "stream": true, "temperature": 0,
                       "max_tokens": max_tokens, "messages": messages}),
            ),
            Dialect::Responses => (
                "/v1/responses",
                json!({"model": "smollm2", "stream": true, "temperature": 0,
                       "max_output_tokens": max_tokens, "input": PROMPT, "store": false}),
            ),
            Dialect::Messages => (
                "/v1/messages",
                json!({"model": "smollm2", "stream": true, "temperature": 0,
                       "max_tokens": max_tokens, "messages": messages}),
            ),
            Dialect::Ollama => (
                "/api/chat",
                json!({"model": "smollm2", "stream": true, "messages": messages,
                       "options": {"temperature": 0, "num_predict": max_tokens}}),
            ),
        }
    }

    /// Whether an event carries a token of text.
    fn is_token(self, event: &Value) -> bool {
        match self {
            Dialect::Chat | Dialect::ChatAgain => event["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            Dialect::Responses => event["type"] == "response.output_text.delta",
            Dialect::Messages => event["type"] == "content_block_delta",
            Dialect::Ollama => {
                event["done"] == false
                    && event["message"]["content"]
                        .as_str()
                        .is_some_and(|t| !t.is_empty())
            }
        }
    }
}

fn stream(addr: SocketAddr, dialect: Dialect, max_tokens: usize) -> Run {
    let (path, body) = dialect.request(max_tokens);
    Run::over_http(addr, path, &body.to_string(), |event| {
        dialect.is_token(event)
    })
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 5);
    let max_tokens = env_usize("BENCH_MAX_TOKENS", 64);
    let gguf = smollm2();
    let home = tempfile::tempdir().unwrap();
    let flag = format!("smollm2={}", gguf.display());
    let server = Porten::start(home.path(), &["--model".as_ref(), flag.as_ref()]);
    let dialects = [
        Dialect::Chat,
        Dialect::ChatAgain,
        Dialect::Responses,
        Dialect::Messages,
        Dialect::Ollama,
    ];
    // Warm every path (the first request also waits for the model to load).
    for dialect in dialects {
        stream(server.addr, dialect, 4);
    }
    let mut results: Vec<Vec<Run>> = dialects.iter().map(|_| Vec::new()).collect();
    for round in 0..runs {
        // Rotate the order, so no dialect always runs first in a round.
        for i in 0..dialects.len() {
            let at = (i + round) % dialects.len();
            results[at].push(stream(server.addr, dialects[at], max_tokens));
        }
    }
    drop(server);
    let tps: Vec<f64> = results
        .iter()
        .map(|r| median(r.iter().map(Run::tok_per_s).collect::<Vec<f64>>()))
        .collect();
    let ttft: Vec<f64> = results
        .iter()
        .map(|r| median(r.iter().map(|x| x.ttft.as_secs_f64() * 1e3).collect()))
        .collect();
    // Rounds pair the dialects on the same few seconds of a noisy machine: the median of each
    // round's ratio and difference to chat cancels drift that whole-run medians keep.
    let paired = |i: usize, f: &dyn Fn(&Run, &Run) -> f64| {
        median(
            (0..runs)
                .map(|r| f(&results[i][r], &results[0][r]))
                .collect::<Vec<f64>>(),
        )
    };
    let tokens: Vec<usize> = results.iter().map(|r| r[0].tokens).collect();
    println!(
        "SmolLM2-135M Q4_1, {runs} interleaved rounds x {max_tokens} tokens, streaming, medians:"
    );
    for (i, dialect) in dialects.iter().enumerate() {
        let ratio = paired(i, &|a, b| a.tok_per_s() / b.tok_per_s());
        let gap = paired(i, &|a, b| {
            (a.ttft.as_secs_f64() - b.ttft.as_secs_f64()) * 1e3
        });
        println!(
            "  {:<17}: {:8.2} tok/s ({ratio:.3}x chat, paired)  first token {:8.2} ms ({gap:+.2} ms vs chat, paired)  {} tokens",
            dialect.name(),
            tps[i],
            ttft[i],
            tokens[i]
        );
    }
    println!("  targets: tokens/s within 1.02x of chat completions, first token within 1 ms");
}
