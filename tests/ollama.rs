//! Ollama's API on porten's port: the official `ollama` Python client, unmodified, against the
//! binary serving from a store and a team mirror (moto), and the NDJSON stream's shape read off
//! the wire.

mod support;

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::fixtures::{write_tiny_chat_model, write_tiny_embedding_model};
use support::http::{read_chunk, read_head};
use support::s3::Moto;
use support::server::Porten;

const KEY: &str = "ollama-test-key";

/// `porten ARGS --home HOME` with `env`, which must succeed.
fn porten(home: &Path, args: &[&str], env: &[(String, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_porten"))
        .args(args)
        .arg("--home")
        .arg(home)
        .env_remove("PORTEN_AUTO_DOWNLOAD_MB")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run porten");
    assert!(
        out.status.success(),
        "porten {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_official_ollama_client_works_unmodified() {
    let root = support::setup_test_deps();
    let work = tempfile::tempdir().unwrap();
    let (served, other) = (work.path().join("served"), work.path().join("other"));
    let moto = Moto::start();
    moto.create_bucket("team");
    let mut env = moto.env();
    env.push(("PORTEN_MIRROR".into(), "s3://team/models".into()));

    let tiny = work.path().join("tiny");
    write_tiny_chat_model(&tiny);
    let embed = work.path().join("tiny-embed");
    write_tiny_embedding_model(&embed);
    let smollm2 = support::smollm2();
    for (path, name) in [
        (&tiny, "tiny"),
        (&embed, "tiny-embed"),
        (&smollm2, "smollm2"),
    ] {
        porten(
            &served,
            &["import", path.to_str().unwrap(), "--name", name],
            &env,
        );
    }
    // A model only the mirror has: pushed from another machine's store.
    let mirrored = work.path().join("tiny-team");
    write_tiny_chat_model(&mirrored);
    let config = mirrored.join("config.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["rope_theta"] = json!(20000.0);
    std::fs::write(&config, value.to_string()).unwrap();
    porten(
        &other,
        &["import", mirrored.to_str().unwrap(), "--name", "tiny-team"],
        &env,
    );
    porten(&other, &["push", "tiny-team"], &env);

    let served_arg = served.to_str().unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Porten::start_with_env(&["--home", served_arg, "--api-key", KEY], &env);
    server.wait_ready();
    let mut pytest = Command::new(root.join(".venv/bin/python"));
    pytest
        .args(["-m", "pytest", "-q", "tests/python_ollama"])
        .current_dir(root)
        .env("OLLAMA_HOST", format!("http://{}", server.addr))
        .env("PORTEN_API_KEY", KEY)
        .env("PORTEN_CHAT_MODEL", "smollm2")
        .env("PORTEN_TINY_MODEL", "tiny")
        .env("PORTEN_EMBED_MODEL", "tiny-embed")
        .env("PORTEN_MIRROR_MODEL", "tiny-team");
    server.run_client("the ollama client's tests", &mut pytest);
}

#[test]
fn a_chat_stream_is_ndjson_a_line_a_frame_ending_with_the_durations() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny");
    write_tiny_chat_model(&tiny);
    let server = Porten::with_models(&[("tiny", &tiny)], &[]);
    let body = json!({"model": "tiny:latest", "options": {"num_predict": 50},
                      "messages": [{"role": "system", "content": "You are terse."},
                                   {"role": "user", "content": "Hello there"}]})
    .to_string();
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/x-ndjson"));
    let mut frames = Vec::new();
    while let Some(frame) = read_chunk(&mut reader) {
        frames.push(String::from_utf8(frame).unwrap());
    }
    // Each line is flushed as produced: one frame, one complete JSON line.
    assert!(frames.len() > 2, "{frames:?}");
    let lines: Vec<Value> = frames
        .iter()
        .map(|f| {
            assert!(f.ends_with('\n') && f.matches('\n').count() == 1, "{f:?}");
            serde_json::from_str(f.trim_end()).unwrap()
        })
        .collect();
    let (last, pieces) = lines.split_last().unwrap();
    for piece in pieces {
        assert_eq!(piece["done"], false, "{piece}");
        assert_eq!(piece["model"], "tiny:latest");
        assert_eq!(piece["message"]["role"], "assistant");
        assert!(piece.get("eval_count").is_none());
    }
    assert_eq!(last["done"], true);
    let counted = last["eval_count"].as_u64().unwrap();
    match last["done_reason"].as_str() {
        Some("length") => assert_eq!(counted, 50, "{last}"),
        Some("stop") => assert!(counted < 50, "{last}"),
        other => panic!("done_reason {other:?}"),
    }
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[field].as_u64().is_some(), "{field} in {last}");
    }
    let total = last["total_duration"].as_u64().unwrap();
    let parts = last["load_duration"].as_u64().unwrap()
        + last["prompt_eval_duration"].as_u64().unwrap()
        + last["eval_duration"].as_u64().unwrap();
    assert!(parts <= total, "{last}");
    assert!(
        total < 60_000_000_000,
        "durations are in nanoseconds: {last}"
    );
}
