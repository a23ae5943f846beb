//! The binary's one-shot subcommands (`import`, `show`, `verify`...) against a `--home`.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `porten ARGS --home HOME` with warnings-only logs and no disk budget from the
/// environment.
pub fn porten(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_porten"))
        .args(args)
        .arg("--home")
        .arg(home)
        .env_remove("PORTEN_AUTO_DOWNLOAD_MB")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run porten")
}

/// [`porten`], which must succeed; its stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = porten(home, args);
    assert!(
        out.status.success(),
        "porten {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
