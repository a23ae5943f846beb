//! olah, a real Hugging Face Hub-protocol server (PyPI), serving git repositories written by
//! `tests/hub/olah_repo.py` from its `mirrors-path`, offline, on 127.0.0.1. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running olah.
pub struct Olah {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub endpoint: String,
    /// Where its repositories are.
    pub mirrors: PathBuf,
}

impl Olah {
    /// olah over `work/mirrors` (made if missing), on a free port.
    pub fn start(work: &Path) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mirrors = work.join("mirrors");
        std::fs::create_dir_all(&mirrors).unwrap();
        // A port picked here can be taken before olah binds it: a child that exits is
        // started again on another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = work.join("olah.toml");
            std::fs::write(
                &config,
                format!(
                    "[basic]\nhost = \"127.0.0.1\"\nport = {port}\nmirror-netloc = \
                     \"127.0.0.1:{port}\"\nmirror-lfs-netloc = \"127.0.0.1:{port}\"\nrepos-path = \
                     \"{}\"\nmirrors-path = [\"{}\"]\n\n[accessibility]\noffline = true\n",
                    work.join("olah-cache").display(),
                    mirrors.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(root.join(".venv-olah/bin/olah-cli"))
                .arg("--config")
                .arg(&config)
                .current_dir(work)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start olah (scripts/setup-test-deps.sh installs it)");
            let endpoint = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                // olah's own answer (offline, its whoami route says 504, from uvicorn).
                let probe = super::http::probe(
                    format!("127.0.0.1:{port}").parse().unwrap(),
                    "/api/whoami-v2",
                );
                if probe.is_some_and(|answer| answer.contains("server: uvicorn")) {
                    return Olah {
                        child,
                        endpoint,
                        mirrors,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("olah did not start");
    }

    /// Writes the repository `repo` (`ORG/NAME`) with `files` (repo path, local file), on
    /// `branch`; its commit.
    pub fn repo(&self, repo: &str, files: &[(&str, &Path)], branch: Option<&str>) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new("python3");
        command
            .arg(root.join("tests/hub/olah_repo.py"))
            .arg(&self.mirrors)
            .arg(repo);
        for (path, local) in files {
            command.arg(format!("{path}={}", local.display()));
        }
        if let Some(branch) = branch {
            command.args(["--branch", branch]);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Olah {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
