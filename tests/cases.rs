//! HTTP-level cases as folders: `tests/cases/<name>/request.json` says what to send,
//! `expected.json` what must come back. A new case is a new folder, not new code.
//!
//! request.json: `method`, `path`, optional `headers`, and a body as `body` (JSON), `raw_body`
//! (bytes as a string), or `raw_body_repeat` (`text` x `times`); `fill` (JSON pointer ->
//! `text` x `times`) puts a long string into `body`; `no_content_length` sends the body
//! chunked. expected.json: `status`, optional `headers` (exact values), `error` (fields of the
//! OpenAI error object, plus `message_contains`), `anthropic_error` (`type` and
//! `message_contains` of Anthropic's error shape), `json` (JSON pointer -> exact value).

mod support;

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use support::http::{self, Answer};
use support::server::Porten;

fn body_of(request: &Value) -> Vec<u8> {
    if let Some(body) = request.get("body") {
        let mut body = body.clone();
        for (pointer, fill) in request
            .get("fill")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = fill["text"]
                .as_str()
                .unwrap()
                .repeat(fill["times"].as_u64().unwrap() as usize);
            *body
                .pointer_mut(pointer)
                .expect("fill names a field of body") = Value::String(text);
        }
        return body.to_string().into_bytes();
    }
    if let Some(raw) = request.get("raw_body") {
        return raw.as_str().unwrap().as_bytes().to_vec();
    }
    if let Some(rep) = request.get("raw_body_repeat") {
        return rep["text"]
            .as_str()
            .unwrap()
            .repeat(rep["times"].as_u64().unwrap() as usize)
            .into_bytes();
    }
    Vec::new()
}

fn send_chunked(server: &Porten, method: &str, path: &str, body: &[u8]) -> Answer {
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
    for piece in body.chunks(4096) {
        if write!(stream, "{:x}\r\n", piece.len()).is_err()
            || stream.write_all(piece).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break; // the server may answer 413 and close before the body is all sent
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    http::read_answer(&mut std::io::BufReader::new(stream))
}

fn run_case(server: &Porten, dir: &Path) -> Result<(), String> {
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
    };
    let request = read("request.json");
    let expected = read("expected.json");
    let method = request["method"].as_str().unwrap();
    let path = request["path"].as_str().unwrap();
    let body = body_of(&request);
    let headers: Vec<(String, String)> = request
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = if request.get("no_content_length").is_some() {
        send_chunked(server, method, path, &body)
    } else {
        http::send(server.addr, method, path, &header_refs, &body)
    };
    let mut problems = Vec::new();
    let want_status = expected["status"].as_u64().unwrap() as u16;
    if answer.status != want_status {
        problems.push(format!("status {} instead of {want_status}", answer.status));
    }
    for (name, value) in expected
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if answer.header(name) != value.as_str() {
            problems.push(format!(
                "header {name}: {:?} instead of {value}",
                answer.header(name)
            ));
        }
    }
    let json: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if let Some(error) = expected.get("error").and_then(Value::as_object) {
        let got = &json["error"];
        for key in ["message", "type", "param", "code"] {
            if got.get(key).is_none() {
                problems.push(format!("error object lacks `{key}`"));
            }
        }
        for (key, want) in error {
            if key == "message_contains" {
                let message = got["message"].as_str().unwrap_or_default();
                if !message.contains(want.as_str().unwrap()) {
                    problems.push(format!("message {message:?} lacks {want}"));
                }
            } else if &got[key] != want {
                problems.push(format!("error.{key} = {} instead of {want}", got[key]));
            }
        }
    }
    if let Some(error) = expected.get("anthropic_error").and_then(Value::as_object) {
        if json["type"] != "error" || !json["error"]["message"].is_string() {
            problems.push("not Anthropic's error shape".to_string());
        }
        if json["error"].get("code").is_some() || json["error"].get("param").is_some() {
            problems.push("OpenAI's fields in Anthropic's error".to_string());
        }
        for (key, want) in error {
            let got = &json["error"];
            if key == "message_contains" {
                let message = got["message"].as_str().unwrap_or_default();
                if !message.contains(want.as_str().unwrap()) {
                    problems.push(format!("message {message:?} lacks {want}"));
                }
            } else if &got[key] != want {
                problems.push(format!("error.{key} = {} instead of {want}", got[key]));
            }
        }
    }
    for (pointer, want) in expected
        .get("json")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if json.pointer(pointer) != Some(want) {
            problems.push(format!(
                "{pointer} = {:?} instead of {want}",
                json.pointer(pointer)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n    body: {}",
            problems.join("; "),
            answer.text()
        ))
    }
}

#[test]
fn http_cases() {
    let tiny = support::tiny_server(&["--max-body-bytes", "65536"]);
    let server = &tiny.server;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "expected the case folders under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        match run_case(server, dir) {
            Ok(()) => println!("case {name} ... ok"),
            Err(why) => {
                println!("case {name} ... FAILED: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
    assert_eq!(
        http::get(server.addr, "/health").status,
        200,
        "the server still serves"
    );
}
