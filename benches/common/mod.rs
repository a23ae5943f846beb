//! Shared by the benchmarks.
// Each benchmark is its own crate and uses only some of these.
#![allow(dead_code)]

pub mod load;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The median of `values` (the upper one of an even count).
pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("comparable values"));
    values[values.len() / 2]
}

/// A whole number from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One streamed answer, timed.
pub struct StreamRun {
    /// Until its first token.
    pub ttft: Duration,
    /// Tokens streamed.
    pub tokens: usize,
    /// Until its end.
    pub total: Duration,
}

impl StreamRun {
    /// POSTs `body` to `path` of `addr` and times the SSE stream that answers, to `[DONE]` or
    /// the connection's close; `is_token` says which `data:` events carry a token.
    pub fn over_http(
        addr: std::net::SocketAddr,
        path: &str,
        body: &str,
        is_token: impl Fn(&serde_json::Value) -> bool,
    ) -> Self {
        use std::io::{BufRead, Write};
        let start = std::time::Instant::now();
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        write!(conn, "POST {path} HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
        let mut reader = std::io::BufReader::new(conn);
        let (mut line, mut ttft, mut tokens) = (String::new(), None, 0);
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            // SSE's `data: ` lines, or NDJSON's bare objects (Ollama's streams).
            let line = line.trim_end();
            let Some(data) = line
                .strip_prefix("data: ")
                .or_else(|| line.starts_with('{').then_some(line))
            else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let event: serde_json::Value = serde_json::from_str(data).unwrap();
            if is_token(&event) {
                ttft.get_or_insert_with(|| start.elapsed());
                tokens += 1;
            }
        }
        Self {
            ttft: ttft.expect("a token"),
            tokens,
            total: start.elapsed(),
        }
    }

    /// Decode speed after the first token, the figure that measures streaming throughput.
    pub fn tok_per_s(&self) -> f64 {
        (self.tokens.saturating_sub(1)) as f64 / (self.total - self.ttft).as_secs_f64()
    }
}

/// SmolLM2's GGUF file: `PORTEN_SMOLLM2_GGUF`, else fetched by `scripts/fetch-smollm2.sh`.
pub fn smollm2() -> PathBuf {
    match std::env::var("PORTEN_SMOLLM2_GGUF") {
        Ok(p) => p.into(),
        Err(_) => script_path("fetch-smollm2.sh"),
    }
}

/// Runs `scripts/NAME`, which fetches or builds something when missing (its progress on
/// stderr) and prints its path.
pub fn script_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts").join(name))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/{name} failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A `porten` process (`serve --listen 127.0.0.1:0 ARGS`, or another command) with
/// warnings-only logs, killed when dropped.
pub struct Porten {
    child: std::process::Child,
    /// The address it announced.
    pub addr: std::net::SocketAddr,
}

impl Porten {
    /// Starts it with `PORTEN_HOME` set to `home` and waits until it announces its address.
    pub fn start(home: &std::path::Path, args: &[&std::ffi::OsStr]) -> Self {
        Self::launch(
            home,
            &["serve", "--listen", "127.0.0.1:0"],
            args,
            "porten listening on http://",
        )
    }

    /// `porten HEAD... ARGS...` (`hub --listen 127.0.0.1:0`, say) with `PORTEN_HOME` set to
    /// `home`, once it has printed its address after `announce`.
    pub fn launch(
        home: &std::path::Path,
        head: &[&str],
        args: &[&std::ffi::OsStr],
        announce: &str,
    ) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_porten"))
            .args(head)
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
            .strip_prefix(announce)
            .unwrap_or_else(|| panic!("porten did not start: {line:?}"))
            .parse()
            .unwrap();
        Self { child, addr }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU seconds (user and system) process `pid` has used so far, from `/proc/PID/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Pins every thread of process `pid` (and the threads it makes later) to `cores` (`"0"`,
/// `"1"`), with util-linux's `taskset`.
pub fn pin(pid: u32, cores: &str) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cores, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run taskset");
    assert!(status.success(), "taskset failed for {pid}");
}

impl Drop for Porten {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gguf` loaded in-process through porten's own GGUF loader (the pipeline and F32 activations
/// porten serves it with on the CPU), running `max_sequences` at once.
pub async fn load_in_process(
    gguf: &std::path::Path,
    max_sequences: usize,
    prefix_cache: bool,
) -> mistralrs::Model {
    let dir = gguf.parent().unwrap().display().to_string();
    let file = gguf.file_name().unwrap().to_string_lossy().into_owned();
    porten_proxy::engine::gguf::load(porten_proxy::engine::gguf::GgufLoad {
        dir: &dir,
        file: &file,
        max_sequences,
        dtype: mistralrs::ModelDType::F32,
        prefix_cache,
        gpu: None,
    })
    .await
    .unwrap()
}

/// `METHOD path` without a body, on a connection of its own: the whole answer, head and all.
pub fn bodiless(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nhost: b\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

/// The sum of every sample of `metric` (all label sets) in `addr`'s Prometheus `/metrics`.
pub fn scrape_sum(addr: std::net::SocketAddr, metric: &str) -> f64 {
    bodiless(addr, "GET", "/metrics")
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
