//! The engine's prefix cache, bounded by porten's books: an agent's second turn starts from its
//! first turn's cached prefix (the engine's hit counter in `/admin/status`), answers exactly as
//! a server without the cache does, the books never pass their bound before a prompt (the cache
//! is dropped first), the bound is what the memory estimate charged, and prompt log-probabilities
//! after a cached conversation are the uncached ones.

mod support;

use serde_json::{json, Value};
use support::http::{get, post_json};
use support::server::Porten;

/// SmolLM2 served with `prefix_cache_mb` (and a 1,024-token context).
fn serve(prefix_cache_mb: u64) -> (Porten, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"smollm2\"\npath = \"{}\"\ncontext_length = 1024\n\
             prefix_cache_mb = {prefix_cache_mb}\n",
            support::smollm2().display()
        ),
    )
    .unwrap();
    let server = Porten::start(&["--config", config.to_str().unwrap()]);
    (server, home)
}

/// A system prompt of about 300 tokens that two sessions share.
fn shared_system_prompt() -> String {
    (0..12)
        .map(|n| {
            format!(
                "Rule {n}: the harbour office logs ship number {} at berth {}. ",
                n * 37 + 11,
                n % 9
            )
        })
        .collect()
}

fn answer(server: &Porten, messages: &Value) -> String {
    let answer = post_json(
        server.addr,
        "/v1/chat/completions",
        &json!({"model": "smollm2", "temperature": 0, "max_tokens": 8, "messages": messages}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

fn cache_status(server: &Porten) -> Value {
    let status = get(server.addr, "/admin/status").json();
    status["models"][0]["prefix_cache"].clone()
}

fn echoed_logprobs(server: &Porten, prompt: &str) -> Vec<f64> {
    let answer = post_json(
        server.addr,
        "/v1/completions",
        &json!({"model": "smollm2", "prompt": prompt, "max_tokens": 0, "echo": true,
                "logprobs": 0}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| l.as_f64().unwrap())
        .collect()
}

#[test]
fn an_agents_next_turn_reuses_its_prefix_within_the_bound_and_answers_the_same() {
    support::setup_test_deps();
    let system = shared_system_prompt();
    let first_turn = json!([
        {"role": "system", "content": system},
        {"role": "user", "content": "Which berth does ship 48 use?"},
    ]);
    let other_session = json!([
        {"role": "system", "content": format!("A different office. {system}")},
        {"role": "user", "content": "Name one ship."},
    ]);
    let echo_prompt = format!("{system}The berth of ship 48 is");

    let (cached, _home) = serve(100);
    let (uncached, _home2) = serve(0);
    assert_eq!(cache_status(&uncached), Value::Null, "no cache with 0 MiB");
    let status = get(cached.addr, "/admin/status").json();
    assert_eq!(
        status["models"][0]["estimate"]["prefix_cache"],
        100u64 << 20,
        "the estimate charges the bound"
    );

    let reply = answer(&cached, &first_turn);
    assert_eq!(reply, answer(&uncached, &first_turn));
    let after_first = cache_status(&cached);
    assert_eq!(after_first["hits"], 0, "{after_first}");
    assert_eq!(after_first["bound_bytes"], 100u64 << 20);
    let one_entry = after_first["held_bytes"].as_u64().unwrap();
    assert!(one_entry > 0, "{after_first}");

    // The next turn resends the first with the answer and a new question.
    let second_turn = json!([
        {"role": "system", "content": system},
        {"role": "user", "content": "Which berth does ship 48 use?"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And ship 85?"},
    ]);
    let second = answer(&cached, &second_turn);
    assert_eq!(second, answer(&uncached, &second_turn));
    let after_second = cache_status(&cached);
    assert_eq!(
        after_second["hits"], 1,
        "the second turn missed: {after_second}"
    );
    assert_eq!(after_second["flushes"], 0, "{after_second}");

    // Two entries of about 47 MiB by the books fit in 100 MiB; a third passes the bound, and
    // the prompt after it finds the cache dropped first.
    answer(&cached, &other_session);
    let full = cache_status(&cached);
    assert!(
        full["held_bytes"].as_u64().unwrap() > 100 << 20,
        "books not full: {full}"
    );
    let cached_echo = echoed_logprobs(&cached, &echo_prompt);
    let after_flush = cache_status(&cached);
    assert_eq!(after_flush["flushes"], 1, "{after_flush}");
    assert!(
        after_flush["held_bytes"].as_u64().unwrap() <= 100 << 20,
        "{after_flush}"
    );
    // The server kept serving after dropping its cache, and what it scored is what a server
    // without the cache scores.
    let uncached_echo = echoed_logprobs(&uncached, &echo_prompt);
    assert_eq!(cached_echo.len(), uncached_echo.len());
    for (a, b) in cached_echo.iter().zip(&uncached_echo) {
        assert!((a - b).abs() < 1e-4, "{cached_echo:?}\n{uncached_echo:?}");
    }
    assert_eq!(reply, answer(&cached, &first_turn));
}

/// The tiny safetensors model (mistral.rs's plain pipeline, not the GGUF one), whose default
/// bound at a 512-token context holds one answer, drops its cache every other request under
/// four concurrent clients (one-token answers, which the engine runs a step past their end,
/// and streams among them) and answers every request.
#[test]
fn a_safetensors_model_drops_its_full_cache_under_concurrent_clients_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    support::fixtures::write_tiny_chat_model(&tiny);
    let config = dir.path().join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"tiny\"\npath = \"{}\"\ncontext_length = 512\n",
            tiny.display()
        ),
    )
    .unwrap();
    let server = Porten::start(&["--config", config.to_str().unwrap()]);
    let addr = server.addr;
    let clients: Vec<_> = (0..4)
        .map(|client| {
            std::thread::spawn(move || {
                (0..20)
                    .map(|n| {
                        let answer = post_json(
                            addr,
                            "/v1/chat/completions",
                            &json!({"model": "tiny", "max_tokens": 1 + n % 3,
                                    "stream": n % 2 == 1,
                                    "messages": [{"role": "user",
                                                  "content": format!("question {client} {n}")}]}),
                            &[],
                        );
                        (answer.status, answer.text())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for client in clients {
        for (status, text) in client.join().unwrap() {
            assert_eq!(status, 200, "{text}");
        }
    }
    let status = get(server.addr, "/admin/status").json();
    let cache = &status["models"][0]["prefix_cache"];
    assert!(cache["flushes"].as_u64().unwrap() >= 10, "{cache}");
    // At most the bound, and one answer for each of the four sequences that can finish after
    // the last check (one answer is the whole bound here).
    assert!(
        cache["held_bytes"].as_u64().unwrap() <= 5 * cache["bound_bytes"].as_u64().unwrap(),
        "{cache}"
    );
}
