//! Thousands of malformed and hostile bodies: every answer must be a 4xx in its API's error
//! shape (OpenAI's object, Anthropic's for `/v1/messages`, Ollama's for `/api`), and the server
//! must keep serving afterwards.

mod support;

use serde_json::{json, Value};
use support::http;

/// A deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn valid_body(endpoint: &str) -> Value {
    match endpoint {
        "/v1/chat/completions" => {
            json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        }
        "/v1/completions" => json!({"model": "tiny", "prompt": "hi", "max_tokens": 2}),
        "/v1/responses" => json!({"model": "tiny", "input": "hi", "max_output_tokens": 2}),
        "/v1/messages" => {
            json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        }
        "/api/chat" => json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}),
        "/api/generate" => json!({"model": "tiny", "prompt": "hi"}),
        "/api/show" => json!({"model": "tiny"}),
        _ => json!({"model": "tiny-embed", "input": "hi"}),
    }
}

/// Fields without which a body is invalid.
fn required_fields(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        "/v1/chat/completions" => &["model", "messages"],
        "/v1/completions" => &["model", "prompt"],
        "/v1/responses" => &["model", "input"],
        "/v1/messages" => &["model", "messages", "max_tokens"],
        // Ollama's convention: no messages or prompt is a request to load the model.
        "/api/chat" | "/api/generate" | "/api/show" => &["model"],
        _ => &["model", "input"],
    }
}

/// Whether `answer` is an error in `endpoint`'s API's shape.
fn is_dialect_error(endpoint: &str, answer: &serde_json::Value) -> bool {
    if endpoint.starts_with("/api/") {
        answer["error"].as_str().is_some_and(|m| !m.is_empty())
    } else if endpoint == "/v1/messages" {
        answer["type"] == "error"
            && answer["error"]["type"].is_string()
            && answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
    } else {
        let error = &answer["error"];
        error["message"].as_str().is_some_and(|m| !m.is_empty()) && error["type"].is_string()
    }
}

fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!(null),
        1 => json!(-1),
        2 => json!(1e308),
        3 => json!(u64::MAX),
        4 => json!("x".repeat(rng.below(64))),
        5 => json!([]),
        6 => json!({}),
        7 => json!(true),
        8 => json!([[[[1]]]]),
        9 => json!(-9223372036854775808i64),
        10 => json!({"role": "user"}),
        _ => json!("\u{0000}\u{FFFF}"),
    }
}

/// One malformed body, of a kind picked at random.
fn mutate(rng: &mut Rng, endpoint: &str) -> Vec<u8> {
    let valid = valid_body(endpoint);
    let text = valid.to_string();
    match rng.below(9) {
        // Truncated JSON.
        0 => text.as_bytes()[..rng.below(text.len() - 1) + 1].to_vec(),
        // A field replaced by a value of the wrong type or range.
        1 | 2 => {
            let mut v = valid.clone();
            let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            if key == "max_tokens" || key == "max_output_tokens" {
                v[key] = json!(-(rng.below(1000) as i64) - 1);
            } else {
                // A value of another JSON type is always invalid for these fields.
                let kind = |v: &Value| std::mem::discriminant(v);
                let mut replacement = hostile_value(rng);
                // Ollama (Go) reads a null as a field left out.
                while kind(&replacement) == kind(&valid[key])
                    || (key == "input" && replacement.is_array())
                    || (endpoint.starts_with("/api/") && replacement.is_null())
                {
                    replacement = hostile_value(rng);
                }
                v[key] = replacement;
            }
            v.to_string().into_bytes()
        }
        // Deep nesting.
        3 => {
            let depth = 200 + rng.below(5000);
            let mut s = "[".repeat(depth);
            s.push_str(&"]".repeat(depth));
            // In a field the endpoint reads: an unknown one may be skipped unparsed.
            if endpoint.starts_with("/api/") {
                format!("{{\"model\": {s}}}").into_bytes()
            } else {
                format!("{{\"model\": \"tiny\", \"messages\": {s}}}").into_bytes()
            }
        }
        // Invalid UTF-8 inside a string.
        4 => {
            let mut bytes = text.into_bytes();
            let at = bytes.iter().position(|&b| b == b'h').unwrap_or(1);
            bytes[at] = [0xff, 0xc3, 0x80 | 0x40, 0xed][rng.below(4)];
            bytes
        }
        // Random bytes.
        5 => (0..rng.below(256) + 1).map(|_| rng.next() as u8).collect(),
        // Not an object.
        6 => [&b"[]"[..], b"\"text\"", b"42", b"null", b"true"][rng.below(5)].to_vec(),
        // A required field dropped.
        7 => {
            let mut v = valid.clone();
            let obj = v.as_object_mut().unwrap();
            let required = required_fields(endpoint);
            obj.remove(required[rng.below(required.len())]);
            v.to_string().into_bytes()
        }
        // Garbage after a valid object.
        _ => format!("{text}{}", ["x", "}", ",", "{}"][rng.below(4)]).into_bytes(),
    }
}

#[test]
fn malformed_bodies_get_their_api_s_errors_and_the_server_survives() {
    let tiny = support::tiny_server(&[]);
    let server = &tiny.server;
    let endpoints = [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/show",
    ];
    let mut rng = Rng(0x5eed);
    let rounds = 4000;
    for round in 0..rounds {
        let endpoint = endpoints[rng.below(endpoints.len())];
        let body = mutate(&mut rng, endpoint);
        let answer = http::send(
            server.addr,
            "POST",
            endpoint,
            &[("content-type", "application/json")],
            &body,
        );
        let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        assert!(
            (400..500).contains(&answer.status),
            "round {round}: {endpoint} {shown:?} got {} {}",
            answer.status,
            answer.text()
        );
        assert!(
            is_dialect_error(endpoint, &answer.json()),
            "round {round}: {endpoint} answered no error of its API: {}",
            answer.text()
        );
    }
    for endpoint in endpoints {
        let ok = http::post_json(server.addr, endpoint, &valid_body(endpoint), &[]);
        assert_eq!(
            ok.status,
            200,
            "{endpoint} after the fuzzing: {}",
            ok.text()
        );
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
