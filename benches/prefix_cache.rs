//! What mistral.rs 0.8.1's own prefix cache gives and costs on the CPU, without porten's books
//! around it (`proxy/src/engine/prefix_cache.rs`): SmolLM2 in-process, loaded twice through
//! porten's own GGUF loader, once with the cache off and once on, each given the same greedy
//! conversation:
//!
//! 1. session X asks a question under a shared system prompt S (~600 tokens);
//! 2. session Y asks another under the same S;
//! 3. X's second turn resends S, its question and answer, and a follow-up.
//!
//! It prints X's second-turn first-token time (what the cache is for), whether X's second
//! answer is the same with the cache on as off (it should be: greedy decoding of the same
//! tokens), and how much resident memory the process gained from `BENCH_REQUESTS` more
//! requests with distinct prompts (the cache on the CPU is never evicted).
//!
//! `cargo bench --bench prefix_cache`. Env: `BENCH_REQUESTS` (default 6), `PORTEN_SMOLLM2_GGUF`.

mod common;

use std::time::{Duration, Instant};

use common::{env_usize, load_in_process, smollm2};
use mistralrs::{RequestBuilder, Response, TextMessageRole};

/// One greedy answer, streamed: its text and the time to its first token.
async fn ask(model: &mistralrs::Model, turns: &[(TextMessageRole, String)]) -> (String, Duration) {
    let mut request = RequestBuilder::new()
        .set_deterministic_sampler()
        .set_sampler_max_len(24);
    for (role, text) in turns {
        request = request.add_message(role.clone(), text);
    }
    let start = Instant::now();
    let mut stream = model.stream_chat_request(request).await.unwrap();
    let (mut text, mut first) = (String::new(), None);
    while let Some(response) = stream.next().await {
        match response {
            Response::Chunk(chunk) => {
                first.get_or_insert_with(|| start.elapsed());
                let choice = &chunk.choices[0];
                text.push_str(choice.delta.content.as_deref().unwrap_or_default());
                if choice.finish_reason.is_some() {
                    break;
                }
            }
            Response::Done(_) => break,
            _ => panic!("engine error"),
        }
    }
    (text, first.unwrap_or_else(|| start.elapsed()))
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

fn shared_system_prompt() -> String {
    (0..24)
        .map(|n| {
            format!(
                "Rule {n}: the harbour office logs ship number {} at berth {} and checks its papers. ",
                n * 37 + 11,
                n % 9
            )
        })
        .collect()
}

struct Outcome {
    second_turn: String,
    second_turn_first_token: Duration,
    gained_mib: f64,
}

async fn conversation(model: &mistralrs::Model, extra_requests: usize) -> Outcome {
    use TextMessageRole::{Assistant, System, User};
    let system = shared_system_prompt();
    let question_x = "Which berth does ship 48 use? Answer briefly.".to_string();
    let (answer_x, _) = ask(
        model,
        &[(System, system.clone()), (User, question_x.clone())],
    )
    .await;
    let question_y = "Name two ship numbers from the rules.".to_string();
    ask(model, &[(System, system.clone()), (User, question_y)]).await;
    let (second_turn, second_turn_first_token) = ask(
        model,
        &[
            (System, system.clone()),
            (User, question_x),
            (Assistant, answer_x),
            (User, "And which berth does ship 85 use?".to_string()),
        ],
    )
    .await;
    let before = rss_mib();
    for n in 0..extra_requests {
        let distinct = format!(
            "{}Request {n}: {}",
            n,
            "tell me about the harbour. ".repeat(40)
        );
        ask(model, &[(System, distinct), (User, "Go on.".to_string())]).await;
    }
    Outcome {
        second_turn,
        second_turn_first_token,
        gained_mib: rss_mib() - before,
    }
}

fn main() {
    let extra = env_usize("BENCH_REQUESTS", 6);
    let gguf = smollm2();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut outcomes = Vec::new();
    for prefix_cache in [false, true] {
        let model = rt.block_on(load_in_process(&gguf, 1, prefix_cache));
        outcomes.push(rt.block_on(conversation(&model, extra)));
        drop(model);
        // Let the engine thread wind down before the next one starts.
        std::thread::sleep(Duration::from_secs(2));
    }
    let (off, on) = (&outcomes[0], &outcomes[1]);
    println!("SmolLM2-135M Q4_1 in-process, mistral.rs's prefix cache off vs on, unbounded:");
    for (name, o) in [("off", off), ("on ", on)] {
        println!(
            "  cache {name}: X's second turn first token {:7.0} ms; {extra} more distinct requests \
             grew resident memory by {:6.1} MiB; X's second answer: {:?}",
            o.second_turn_first_token.as_secs_f64() * 1e3,
            o.gained_mib,
            o.second_turn
        );
    }
    println!(
        "  second answer identical with the cache on: {}",
        if off.second_turn == on.second_turn {
            "yes"
        } else {
            "NO"
        }
    );
}
