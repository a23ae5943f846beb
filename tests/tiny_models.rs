//! End-to-end through the real binary with tiny random models written by the fixture code:
//! every endpoint, the SSE shape, cancellation, auth, and start-up errors.

mod support;

use std::io::BufReader;

use serde_json::{json, Value};
use support::fixtures::{write_tiny_chat_model, EMBEDDING_DIM};
use support::http::{self, get, post_json};
use support::server::Porten;

fn tiny(extra: &[&str]) -> support::TinyServer {
    support::tiny_server(extra)
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": "tiny", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello there"}
    ], "max_tokens": 8});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[test]
fn chat_completion_has_openai_shape_and_respects_max_tokens() {
    let t = tiny(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/chat/completions",
        &chat_body(json!({})),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(answer
        .header("x-request-id")
        .is_some_and(|id| id.starts_with("req-")));
    let body = answer.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "tiny");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &body["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "{usage}");
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 10,
        "the chat template adds tokens: {usage}"
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
}

#[test]
fn n_choices_come_back_indexed() {
    let t = tiny(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/chat/completions",
        &chat_body(json!({"n": 3})),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let indices: Vec<u64> = answer.json()["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, vec![0, 1, 2]);
}

#[test]
fn streaming_is_sse_with_role_first_finish_last_usage_and_done() {
    let t = tiny(&[]);
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let answer = post_json(t.server.addr, "/v1/chat/completions", &body, &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = answer.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.len() >= 2, "{chunks:?}");
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(chunks
        .iter()
        .all(|c| c["id"] == id && c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks[1..].iter().all(|c| c["choices"]
        .get(0)
        .is_none_or(|ch| ch["delta"].get("role").is_none())));
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let completion_tokens = usage_chunk["usage"]["completion_tokens"].as_u64().unwrap();
    let content_chunks = &chunks[..chunks.len() - 1];
    assert!(content_chunks.iter().all(|c| c["usage"].is_null()));
    let finishes: Vec<&Value> = content_chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes.len(), 1, "exactly one finish chunk");
    assert!(content_chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    assert!((1..=8).contains(&completion_tokens));
}

#[test]
fn streaming_without_include_usage_sends_no_usage_field() {
    let t = tiny(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true})),
        &[],
    );
    let events = answer.events();
    for e in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(e).unwrap();
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert!(!chunk["choices"].as_array().unwrap().is_empty());
    }
}

#[test]
fn a_logit_bias_of_minus_100_keeps_a_token_out_while_sampling() {
    let t = tiny(&[]);
    // The random model's next token is near uniform over 259, three of which end the text:
    // unbiased, 600 sampled tokens without one happen about once in a thousand answers.
    for _ in 0..3 {
        let answer = post_json(
            t.server.addr,
            "/v1/chat/completions",
            &chat_body(json!({"max_tokens": 600, "temperature": 1.0,
                              "logit_bias": {"256": -100, "257": -100, "258": -100}})),
            &[],
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        let answer = answer.json();
        assert_eq!(answer["choices"][0]["finish_reason"], "length", "{answer}");
        assert_eq!(answer["usage"]["completion_tokens"], 600, "{answer}");
    }
}

#[test]
fn a_streamed_answer_that_runs_out_of_tokens_says_so_even_when_it_ends_inside_a_character() {
    let t = tiny(&[]);
    // The random byte-level model often ends on a byte that is not yet a whole character; the
    // engine then sends no final chunk, and the answer must still end by `length`, counted.
    for _ in 0..8 {
        let answer = post_json(
            t.server.addr,
            "/v1/chat/completions",
            &chat_body(
                json!({"stream": true, "stream_options": {"include_usage": true},
                              "max_tokens": 300, "temperature": 1.0,
                              "logit_bias": {"256": -100, "257": -100, "258": -100}}),
            ),
            &[],
        );
        assert_eq!(answer.status, 200);
        let text = answer.text();
        let events: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.trim().strip_prefix("data: "))
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect();
        let finishes: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"].get(0))
            .map(|c| &c["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, ["length"], "{text}");
        let usage = events
            .iter()
            .find(|e| !e["usage"].is_null())
            .expect("usage");
        assert_eq!(usage["usage"]["completion_tokens"], 300, "{usage}");
        // The same in a streamed text completion.
        let answer = post_json(
            t.server.addr,
            "/v1/completions",
            &json!({"model": "tiny", "prompt": "Once", "stream": true, "max_tokens": 300,
                    "temperature": 1.0,
                    "logit_bias": {"256": -100, "257": -100, "258": -100}}),
            &[],
        );
        assert_eq!(answer.status, 200);
        let text = answer.text();
        assert_eq!(
            text.matches("\"finish_reason\":\"length\"").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("\"finish_reason\":\"stop\""), "{text}");
    }
}

#[test]
fn a_client_that_disconnects_cancels_its_generation() {
    let t = tiny(&[]);
    // The end-of-text tokens forbidden, so the answer is still going when the client leaves.
    let body = chat_body(
        json!({"stream": true, "max_tokens": 1900, "temperature": 1.0,
                                "logit_bias": {"256": -100, "257": -100, "258": -100}}),
    );
    let mut stream = http::open(
        t.server.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        body.to_string().as_bytes(),
    );
    {
        let mut reader = BufReader::new(&mut stream);
        let (status, _) = http::read_head(&mut reader);
        assert_eq!(status, 200);
        let first = http::read_chunk(&mut reader).expect("a first event");
        assert!(first.starts_with(b"data: "));
    }
    drop(stream);
    assert!(
        t.server
            .wait_for_log("client disconnected; generation cancelled", 30),
        "no cancellation logged:\n{}",
        t.server.log()
    );
    let after = post_json(
        t.server.addr,
        "/v1/chat/completions",
        &chat_body(json!({})),
        &[],
    );
    assert_eq!(after.status, 200, "the server keeps serving");
}

#[test]
fn text_completions_answer_each_prompt_and_stream() {
    let t = tiny(&[]);
    let answer = post_json(
        t.server.addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": ["one", "two"], "max_tokens": 4, "n": 2}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["object"], "text_completion");
    let mut indices: Vec<u64> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    indices.sort();
    assert_eq!(indices, vec![0, 1, 2, 3]);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 16);

    let tokens = post_json(
        t.server.addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": [104, 105], "max_tokens": 3}),
        &[],
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["usage"]["prompt_tokens"], 2);

    let streamed = post_json(
        t.server.addr,
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "abc", "max_tokens": 5, "stream": true}),
        &[],
    );
    let events = streamed.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string(), "{last}");
}

#[test]
fn embeddings_as_floats_and_base64_agree() {
    let t = tiny(&[]);
    let floats = post_json(
        t.server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny-embed", "input": ["hello", "world"]}),
        &[],
    );
    assert_eq!(floats.status, 200, "{}", floats.text());
    let body = floats.json();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let first: Vec<f32> = serde_json::from_value(data[0]["embedding"].clone()).unwrap();
    assert_eq!(first.len(), EMBEDDING_DIM);
    let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-3,
        "the Normalize module makes unit vectors: {norm}"
    );
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 10);

    let b64 = post_json(
        t.server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny-embed", "input": "hello", "encoding_format": "base64"}),
        &[],
    );
    assert_eq!(b64.status, 200);
    let text = b64.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (a, b) in decoded.iter().zip(&first) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn kinds_are_kept_apart() {
    let t = tiny(&[]);
    let chat_on_embedder = post_json(
        t.server.addr,
        "/v1/chat/completions",
        &json!({"model": "tiny-embed", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    );
    assert_eq!(chat_on_embedder.status, 400);
    assert!(chat_on_embedder.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/embeddings"));
    let embed_on_chat = post_json(
        t.server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny", "input": "x"}),
        &[],
    );
    assert_eq!(embed_on_chat.status, 400);
    assert_eq!(embed_on_chat.json()["error"]["param"], "model");
}

#[test]
fn models_are_listed_with_kind_and_state() {
    let t = tiny(&[]);
    let list = get(t.server.addr, "/v1/models").json();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["tiny", "tiny-embed"]);
    let state_of = |id: &str| {
        let one = get(t.server.addr, &format!("/v1/models/{id}")).json();
        (
            one["object"].as_str().map(str::to_string),
            one["kind"].as_str().map(str::to_string),
            one["state"].as_str().map(str::to_string),
        )
    };
    let expect = |kind: &str, state: &str| {
        (
            Some("model".to_string()),
            Some(kind.to_string()),
            Some(state.to_string()),
        )
    };
    // Models load on their first request.
    assert_eq!(state_of("tiny-embed"), expect("embedding", "available"));
    let embedded = post_json(
        t.server.addr,
        "/v1/embeddings",
        &json!({"model": "tiny-embed", "input": "hello"}),
        &[],
    );
    assert_eq!(embedded.status, 200);
    assert_eq!(state_of("tiny-embed"), expect("embedding", "loaded"));
    assert_eq!(state_of("tiny"), expect("chat", "available"));
    let missing = get(t.server.addr, "/v1/models/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
    assert_eq!(get(t.server.addr, "/health").json()["status"], "ok");
}

#[test]
fn api_keys_guard_v1_but_not_health() {
    let t = tiny(&["--api-key", "sesame"]);
    let none = get(t.server.addr, "/v1/models");
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["type"], "authentication_error");
    let wrong = http::send(
        t.server.addr,
        "GET",
        "/v1/models",
        &[("authorization", "Bearer sesam")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], "invalid_api_key");
    let right = http::send(
        t.server.addr,
        "GET",
        "/v1/models",
        &[("authorization", "Bearer sesame")],
        b"",
    );
    assert_eq!(right.status, 200);
    assert_eq!(get(t.server.addr, "/health").status, 200);
}

#[test]
fn a_missing_model_path_stops_start_up_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_porten"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "ghost=/no/such/model.gguf",
        ])
        .env("PORTEN_HOME", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ghost")
            && stderr.contains("/no/such/model.gguf")
            && stderr.contains("no such file"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it must not start listening");
}

#[test]
fn a_broken_weight_file_fails_that_model_not_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really").unwrap();
    let chat = dir.path().join("tiny-chat");
    write_tiny_chat_model(&chat);
    let flags = [
        format!("broken={}", broken.display()),
        format!("tiny={}", chat.display()),
    ];
    let server = Porten::start(&["--model", &flags[0], "--model", &flags[1]]);
    // Models load on their first request: the broken one fails then, and stays failed.
    assert_eq!(get(server.addr, "/ready").status, 200);
    for _ in 0..2 {
        let answer = post_json(
            server.addr,
            "/v1/chat/completions",
            &json!({"model": "broken", "messages": [{"role": "user", "content": "x"}]}),
            &[],
        );
        assert_eq!(answer.status, 503);
        assert_eq!(answer.json()["error"]["code"], "model_unavailable");
    }
    let ready = get(server.addr, "/ready");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["models"]["broken"], "failed");
    let good = post_json(
        server.addr,
        "/v1/chat/completions",
        &json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}),
        &[],
    );
    assert_eq!(good.status, 200, "{}", good.text());
}
