//! Shared by the benchmarks.

use std::path::PathBuf;
use std::process::Command;

/// SmolLM2's GGUF file: `PORTEN_SMOLLM2_GGUF`, else fetched by `scripts/fetch-smollm2.sh`.
#[allow(dead_code)] // not every benchmark runs SmolLM2
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

/// `porten serve --listen 127.0.0.1:0 ARGS` with warnings-only logs, killed when dropped.
pub struct Porten {
    child: std::process::Child,
    /// The address it announced.
    pub addr: std::net::SocketAddr,
}

impl Porten {
    /// Starts it with `PORTEN_HOME` set to `home` and waits until it announces its address.
    pub fn start(home: &std::path::Path, args: &[&std::ffi::OsStr]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_porten"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("PORTEN_HOME", home)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start porten");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("porten listening on http://")
            .expect("porten started")
            .parse()
            .unwrap();
        Self { child, addr }
    }
}

impl Drop for Porten {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
