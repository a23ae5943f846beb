//! Streaming overhead of porten's HTTP endpoint against calling mistral.rs in-process, in one
//! run, on SmolLM2: tokens/s and time to first token, interleaved so both see the same machine,
//! and the time porten itself spends before the engine (its context check), read from the
//! server's own `/metrics`.
//!
//! `cargo bench --bench stream_overhead` (or `bash scripts/bench.sh`). Env: `BENCH_RUNS`
//! (default 5), `BENCH_MAX_TOKENS` (default 64), `PORTEN_SMOLLM2_GGUF` (default: fetched).

mod common;

use common::{env_usize, load_in_process, median, scrape_sum, smollm2, Porten, StreamRun as Run};
use std::net::SocketAddr;
use std::time::Instant;

use mistralrs::{RequestBuilder, Response, TextMessageRole};

const PROMPT: &str = "Write a short story about a lighthouse keeper.";

async fn direct_run(model: &mistralrs::Model, max_tokens: usize) -> Run {
    let request = RequestBuilder::new()
        .add_message(TextMessageRole::User, PROMPT)
        .set_sampler_temperature(0.0)
        .set_sampler_max_len(max_tokens);
    let start = Instant::now();
    let mut stream = model.stream_chat_request(request).await.unwrap();
    let mut ttft = None;
    let mut tokens = 0;
    while let Some(response) = stream.next().await {
        match response {
            Response::Chunk(chunk) => {
                ttft.get_or_insert_with(|| start.elapsed());
                tokens += 1;
                if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
                    break;
                }
            }
            Response::Done(_) => break,
            _ => panic!("engine error"),
        }
    }
    Run {
        ttft: ttft.unwrap(),
        tokens,
        total: start.elapsed(),
    }
}

fn http_run(addr: SocketAddr, max_tokens: usize) -> Run {
    let body = serde_json::json!({"model": "smollm2", "stream": true, "temperature": 0, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": PROMPT}]})
    .to_string();
    Run::over_http(addr, "/v1/chat/completions", &body, |chunk| {
        chunk["choices"].as_array().is_some_and(|c| !c.is_empty())
    })
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 5);
    let max_tokens = env_usize("BENCH_MAX_TOKENS", 64);
    let gguf = smollm2();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The same pipeline and activation dtype porten loads GGUF files with (F32 on the CPU).
    let model = rt.block_on(load_in_process(&gguf, 4, false));

    let home = tempfile::tempdir().unwrap();
    let flag = format!("smollm2={}", gguf.display());
    let server = Porten::start(home.path(), &["--model".as_ref(), flag.as_ref()]);
    let addr = server.addr;
    // Warm both paths (and wait for porten's model to load: the first request waits for it).
    rt.block_on(direct_run(&model, 4));
    http_run(addr, 4);

    // porten's own work before the engine, as the server measures it: quiet where the
    // first-token times of two processes on two cores are not.
    let check = |part: &str| {
        scrape_sum(
            addr,
            &format!("porten_prompt_check_duration_seconds_{part}"),
        )
    };
    let (check_sum, check_count) = (check("sum"), check("count"));
    let (mut direct, mut http) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        direct.push(rt.block_on(direct_run(&model, max_tokens)));
        http.push(http_run(addr, max_tokens));
    }
    let checked_ms = (check("sum") - check_sum) * 1e3 / (check("count") - check_count);
    drop(server);
    let tps = |r: &[Run]| median(r.iter().map(Run::tok_per_s).collect());
    let ttft = |r: &[Run]| median(r.iter().map(|x| x.ttft.as_secs_f64() * 1e3).collect());
    let (d_tps, h_tps, d_ttft, h_ttft) = (tps(&direct), tps(&http), ttft(&direct), ttft(&http));
    println!("SmolLM2-135M Q4_1, {runs} runs x {max_tokens} tokens, streaming, medians:");
    println!("  mistral.rs in-process : {d_tps:8.2} tok/s  first token {d_ttft:8.2} ms");
    println!("  porten over HTTP      : {h_tps:8.2} tok/s  first token {h_ttft:8.2} ms");
    println!(
        "  ratio porten/direct   : {:8.3}x tok/s  first-token overhead {:+.2} ms",
        h_tps / d_tps,
        h_ttft - d_ttft
    );
    println!(
        "  porten's context check, inside the server: {checked_ms:.2} ms a request (mean; the \
         tokenization it adds before the engine)"
    );
}
