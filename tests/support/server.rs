//! The real `porten` binary, started on port 0 for one test and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http;

/// A running server.
pub struct Porten {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    _home: tempfile::TempDir,
}

impl Porten {
    /// `porten serve --listen 127.0.0.1:0 ARGS...`, waiting until it announces its address.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like `start`, with extra environment variables for the child.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_porten")), args, env)
    }

    /// Like `start`, with the child's open-file limit set to `soft` and `hard`, as
    /// `ulimit -Sn` and `-Hn` would.
    pub fn start_with_file_limit(args: &[&str], soft: u64, hard: u64) -> Self {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_porten"));
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::spawn(command, args, &[])
    }

    fn spawn(command: Command, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(
            command,
            &["serve", "--listen", "127.0.0.1:0"],
            args,
            env,
            "porten listening on http://",
        )
    }

    /// `porten HEAD... ARGS...` in network namespace `netns` (`ip netns exec`, which execs
    /// porten itself: the child is the server), waiting until it announces its address on a
    /// line starting with `announce`. `PORTEN_HOME` in `env` replaces the fresh home.
    pub fn launch_in(
        netns: &str,
        head: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        announce: &str,
    ) -> Self {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_porten")]);
        Self::launch(command, head, args, env, announce)
    }

    /// `porten HEAD... ARGS...` here, as [`Self::launch_in`] does in a namespace.
    pub fn launch_here(head: &[&str], args: &[&str], env: &[(&str, &str)], announce: &str) -> Self {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_porten")),
            head,
            args,
            env,
            announce,
        )
    }

    fn launch(
        mut command: Command,
        head: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        announce: &str,
    ) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut child = command
            .args(head)
            .args(args)
            .env("PORTEN_HOME", home.path())
            .env_remove("PORTEN_API_KEYS")
            .env_remove("PORTEN_LISTEN")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start porten");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix(announce)
            .unwrap_or_else(|| {
                std::thread::sleep(Duration::from_millis(200));
                panic!("porten did not start: {line:?}\n{}", log.lock().unwrap())
            })
            .parse()
            .unwrap();
        Porten {
            child,
            addr,
            log,
            _home: home,
        }
    }

    /// Starts with the given models and waits until the server is ready (models load on their
    /// first request).
    pub fn with_models(models: &[(&str, &Path)], extra: &[&str]) -> Self {
        let flags: Vec<String> = models
            .iter()
            .map(|(id, path)| format!("{id}={}", path.display()))
            .collect();
        let mut args: Vec<&str> = Vec::new();
        for f in &flags {
            args.extend(["--model", f.as_str()]);
        }
        args.extend_from_slice(extra);
        let server = Self::start(&args);
        server.wait_ready();
        server
    }

    /// Polls `/ready` until 200 (no model failed), for at most two minutes.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = http::get(self.addr, "/ready");
            if answer.status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time: {}\n{}",
                answer.text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`, for at most `secs`.
    pub fn wait_for_log(&self, needle: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs `command`, a client of this server (an SDK's test suite, an evaluation harness),
    /// prints its output, and fails with that output and the server's log unless it
    /// succeeded, naming it `what`. Its output.
    pub fn run_client(&self, what: &str, command: &mut Command) -> String {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let report = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{report}");
        assert!(
            out.status.success(),
            "{what} failed:\n{report}\nserver log:\n{}",
            self.log()
        );
        report
    }

    /// Waits until some whole log line satisfies `wanted`, for at most `secs`.
    pub fn wait_for_log_line(&self, secs: u64, wanted: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().lines().any(&wanted) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGKILL and waits for the process to go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, for at most `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Porten {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
