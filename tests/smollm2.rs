//! The real model: SmolLM2-135M-Instruct (GGUF) through the real binary. Coherent answers,
//! a full queue answered with 503 + Retry-After, and graceful shutdown finishing a stream.

mod support;

use std::io::BufReader;

use serde_json::json;
use support::http;
use support::server::Porten;

fn config_with_one_slot(dir: &std::path::Path, gguf: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("porten.toml");
    let text = format!(
        "[server]\nshutdown_grace_secs = 60\n\n[[models]]\nid = \"smollm2\"\npath = \"{}\"\nmax_concurrency = 1\nmax_queue = 0\n",
        gguf.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn smollm2_answers_coherently() {
    let gguf = support::smollm2();
    let server = Porten::with_models(&[("smollm2", &gguf)], &[]);
    support::assert_names_earth(server.addr, "smollm2");
}

#[test]
fn a_full_queue_gets_503_with_retry_after_and_a_stream_survives_sigterm() {
    let gguf = support::smollm2();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_one_slot(dir.path(), &gguf);
    let mut server = Porten::start(&["--config", config.to_str().unwrap()]);
    server.wait_ready();

    let long = json!({"model": "smollm2", "stream": true, "max_tokens": 24, "temperature": 0,
                      "messages": [{"role": "user", "content": "Tell me about the sea."}]});
    let mut stream = http::open(
        server.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        long.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(&mut stream);
    let (status, _) = http::read_head(&mut reader);
    assert_eq!(status, 200);
    assert!(http::read_chunk(&mut reader).is_some(), "a first token");

    let refused = http::post_json(server.addr, "/v1/chat/completions", &long, &[]);
    assert_eq!(refused.status, 503, "{}", refused.text());
    // Nothing has finished yet, so the estimate is its fallback: 2 s per request ahead of the
    // refused one (none queued, one slot).
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(refused.json()["error"]["code"], "model_overloaded");

    // SIGTERM mid-stream: the stream still runs to [DONE], then the process exits cleanly.
    server.terminate();
    let mut rest = Vec::new();
    while let Some(chunk) = http::read_chunk(&mut reader) {
        rest.extend_from_slice(&chunk);
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(rest.contains("\"finish_reason\":\"length\""), "{rest}");
    let status = server
        .wait_exit(30)
        .expect("porten exits after its last request");
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );
}
