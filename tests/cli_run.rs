//! `porten run` in a real terminal (tmux: keys sent, the pane read back), with a prompt for
//! scripts, and without a server (it serves in its own process); `porten ps` and `porten stop`
//! against the running server.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::Porten;

const BIN: &str = env!("CARGO_BIN_EXE_porten");

fn porten(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PORTEN_HOST")
        .output()
        .unwrap()
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmux session, killed when dropped.
struct Terminal(String);

impl Terminal {
    fn start(command: &str) -> Self {
        let name = format!("porten-run-{}", std::process::id());
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "160",
            "-y",
            "50",
            command,
        ]);
        Terminal(name)
    }

    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.0])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend_from_slice(keys);
        tmux(&args);
    }

    /// Waits until the screen satisfies `wanted`; the screen then.
    fn wait(&self, what: &str, secs: u64, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {secs} s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

/// The text after the last line starting with `>>> question`.
fn answer_after<'a>(screen: &'a str, question: &str) -> &'a str {
    let marker = format!(">>> {question}");
    let at = screen
        .rfind(&marker)
        .map_or(screen.len(), |i| i + marker.len());
    &screen[at..]
}

#[test]
fn run_chats_in_a_terminal_and_ps_and_stop_see_the_model() {
    support::setup_test_deps();
    let server = Porten::with_models(&[("smollm2", &support::smollm2())], &[]);
    let host = server.addr.to_string();
    let terminal = Terminal::start(&format!(
        "env -u RUST_LOG {BIN} run smollm2 --host {host} --max-tokens 600; echo EXIT=$?; sleep 600"
    ));
    terminal.wait("prompt", 30, |s| s.contains(">>> "));

    // An answer appears while it is being generated: text after the question, no new prompt.
    let question = "Write a long story about a dragon who learns to sing.";
    terminal.keys(&[question, "Enter"]);
    let partial = terminal.wait("a streamed answer", 60, |s| {
        let answer = answer_after(s, question);
        answer.trim().len() > 20 && !answer.contains(">>> ")
    });
    // Ctrl-C stops the answer, not the chat: the prompt comes back and the server cancels.
    terminal.keys(&["C-c"]);
    let stopped = terminal.wait("the prompt after Ctrl-C", 10, |s| {
        answer_after(s, question).contains(">>> ")
    });
    assert!(
        answer_after(&stopped, question).len() >= answer_after(&partial, question).trim_end().len(),
        "{stopped}"
    );
    assert!(
        server.wait_for_log("client disconnected; generation cancelled", 10),
        "{}",
        server.log()
    );

    // `ps` sees the model loaded; `--json` has the documented fields.
    let ps = porten(&["ps", "--host", &host]);
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.status.success(), "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("smollm2") && l.contains("loaded")),
        "{table}"
    );
    let ps = porten(&["ps", "--host", &host, "--json"]);
    let listed: Value = serde_json::from_slice(&ps.stdout).unwrap();
    let model = &listed["models"][0];
    assert_eq!(model["name"], "smollm2");
    assert_eq!(model["state"], "loaded");
    assert!(model["size_bytes"].as_u64().unwrap() > 50 << 20, "{listed}");
    assert_eq!(model["context_length"], 4096);

    // A short exchange, then `/clear`, an unknown command and `/bye`.
    terminal.keys(&["Name the planet we live on.", "Enter"]);
    terminal.wait("a second answer", 60, |s| {
        answer_after(s, "Name the planet we live on.").contains(">>> ")
    });
    terminal.keys(&["/clear", "Enter"]);
    terminal.wait("/clear", 10, |s| s.contains("Cleared session context"));
    terminal.keys(&["/bye", "Enter"]);
    terminal.wait("exit status", 10, |s| s.contains("EXIT=0"));

    // With a prompt: the answer on stdout, for scripts.
    let once = porten(&[
        "run",
        "smollm2",
        "--host",
        &host,
        "--max-tokens",
        "40",
        "--temperature",
        "0",
        "Name",
        "the",
        "planet",
        "we",
        "live",
        "on.",
    ]);
    let text = String::from_utf8_lossy(&once.stdout);
    assert!(
        once.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&once.stderr)
    );
    assert!(text.contains("Earth"), "{text}");

    // `stop` unloads it; `ps` lists nothing then.
    let stop = porten(&["stop", "smollm2", "--host", &host]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&stop.stdout).trim(),
        "stopped smollm2"
    );
    let ps = porten(&["ps", "--host", &host, "--json"]);
    let listed: Value = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(listed["models"], serde_json::json!([]), "{listed}");
}

#[test]
fn run_without_a_server_serves_in_its_own_process() {
    let home = tempfile::tempdir().unwrap();
    let smollm2 = support::smollm2();
    let import = Command::new(BIN)
        .args([
            "import",
            smollm2.to_str().unwrap(),
            "--name",
            "smollm2",
            "--home",
        ])
        .arg(home.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // Nothing listens on port 9 (discard) of this machine.
    let out = Command::new(BIN)
        .args([
            "run",
            "smollm2",
            "--host",
            "127.0.0.1:9",
            "--max-tokens",
            "40",
            "--temperature",
            "0",
            "--home",
        ])
        .arg(home.path())
        .arg("Name the planet we live on.")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("serving in this process"), "{stderr}");
    assert!(stdout.contains("Earth"), "{stdout}");
}
