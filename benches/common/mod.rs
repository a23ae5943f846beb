//! Shared by the benchmarks.

use std::path::PathBuf;
use std::process::Command;

/// SmolLM2's GGUF file: `PORTEN_SMOLLM2_GGUF`, else fetched by `scripts/fetch-smollm2.sh`.
pub fn smollm2() -> PathBuf {
    if let Ok(p) = std::env::var("PORTEN_SMOLLM2_GGUF") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/fetch-smollm2.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "fetching SmolLM2 failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
