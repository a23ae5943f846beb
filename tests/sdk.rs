//! The official SDKs, unmodified, against the real binary serving SmolLM2 and the tiny models:
//! OpenAI's (Python from PyPI, JavaScript from npm; chat, completions, embeddings and the
//! Responses API), Anthropic's (Python) and the OpenAI Agents SDK (Python).
//! `scripts/setup-test-deps.sh` installs them when missing.

mod support;

use std::path::Path;
use std::process::Command;

use support::fixtures::{write_tiny_chat_model, write_tiny_embedding_model};
use support::server::Porten;

const KEY: &str = "sdk-test-key";

/// Runs one SDK suite (`program args`, from the repository root) against `server`.
fn run_suite(server: &Porten, program: &Path, args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(root)
        .env("PORTEN_BASE_URL", server.base_url())
        .env("PORTEN_API_KEY", KEY)
        .env("PORTEN_CHAT_MODEL", "smollm2")
        .env("PORTEN_EMBED_MODEL", "tiny-embed")
        .env("PORTEN_TINY_MODEL", "tiny");
    server.run_client(&format!("{} {args:?}", program.display()), &mut command);
}

#[test]
fn official_sdks_work_unmodified() {
    let root = support::setup_test_deps();
    let gguf = support::smollm2();
    let dir = tempfile::tempdir().unwrap();
    let embed = dir.path().join("tiny-embed");
    write_tiny_embedding_model(&embed);
    let tiny = dir.path().join("tiny");
    write_tiny_chat_model(&tiny);
    let server = Porten::with_models(
        &[("smollm2", &gguf), ("tiny-embed", &embed), ("tiny", &tiny)],
        &["--api-key", KEY],
    );
    run_suite(
        &server,
        &root.join(".venv/bin/python"),
        &["-m", "pytest", "-q", "tests/python"],
    );
    run_suite(&server, Path::new("node"), &["--test", "tests/node/"]);
}
