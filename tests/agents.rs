//! The coding agents themselves, unmodified, from npm (`tests/agents/package.json`, installed by
//! `scripts/setup-test-deps.sh`): Codex CLI over the Responses API and Claude Code over the
//! Anthropic Messages API, each running one non-interactive turn against porten on SmolLM2,
//! configured the way a user with a small local model would (their own options for the system
//! prompt, the tools and the context window), and each shown a prompt too long for the model.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::{get, post_json};
use support::server::Porten;

const KEY: &str = "agent-test-key";

/// `tests/agents/node_modules/.bin/NAME`.
fn agent(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/agents/node_modules/.bin")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-test-deps.sh",
        bin.display()
    );
    bin
}

/// Runs `command` with nothing on stdin, killing it after `limit`.
fn run(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .spawn()
        .expect("start the agent");
    let pid = child.id();
    let deadline = Instant::now() + limit;
    let watchdog = std::thread::spawn(move || {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let output = child.wait_with_output().expect("the agent's output");
    let _ = watchdog.join();
    output
}

fn report(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A Codex home for porten. Unless `as_shipped`, its `config.toml` is the one
/// `docs/agents.md` gives (the options a small model needs), pointed at `server`; as shipped,
/// only its provider entry.
fn codex_home(dir: &Path, server: &Porten, as_shipped: bool) -> PathBuf {
    let home = dir.join("codex");
    std::fs::create_dir_all(&home).unwrap();
    let instructions = home.join("instructions.md");
    std::fs::write(
        &instructions,
        "You are a helpful assistant. Answer briefly.\n",
    )
    .unwrap();
    let guide = include_str!("../docs/agents.md");
    let start = guide
        .find("```toml\n")
        .expect("a Codex config in docs/agents.md")
        + 8;
    let documented = &guide[start..start + guide[start..].find("```").unwrap()];
    let mut config: toml::Table = documented.parse().expect("the documented config is TOML");
    config.insert(
        "model_instructions_file".into(),
        instructions.display().to_string().into(),
    );
    config
        .get_mut("model_providers")
        .and_then(|providers| providers.get_mut("porten"))
        .and_then(toml::Value::as_table_mut)
        .expect("the documented config has a porten provider")
        .insert("base_url".into(), server.base_url().into());
    if as_shipped {
        config.retain(|key, _| ["model", "model_provider", "model_providers"].contains(&key));
    }
    std::fs::write(home.join("config.toml"), toml::to_string(&config).unwrap()).unwrap();
    home
}

fn codex(dir: &Path, codex_home: &Path, prompt: &str) -> Output {
    let user_home = dir.join("user");
    std::fs::create_dir_all(&user_home).unwrap();
    let mut command = Command::new(agent("codex"));
    command
        .args(["exec", "--json", "--skip-git-repo-check", prompt])
        .current_dir(dir)
        .env("HOME", &user_home)
        .env("CODEX_HOME", codex_home)
        .env("PORTEN_API_KEY", KEY);
    run(command, Duration::from_secs(300))
}

/// `claude -p` against porten, with a short system prompt and no tools (Claude Code's own
/// options); `context` tells it the model's window (`CLAUDE_CODE_MAX_CONTEXT_TOKENS`).
fn claude(dir: &Path, server: &Porten, prompt: &str, context: Option<&str>) -> Output {
    let user_home = dir.join("claude-home");
    std::fs::create_dir_all(&user_home).unwrap();
    let mut command = Command::new(agent("claude"));
    command
        .args([
            "-p",
            prompt,
            "--model",
            "smollm2",
            "--output-format",
            "json",
        ])
        .args(["--system-prompt", "You are brief.", "--tools", ""])
        .current_dir(dir)
        .env("HOME", &user_home)
        .env("ANTHROPIC_BASE_URL", format!("http://{}", server.addr))
        .env("ANTHROPIC_AUTH_TOKEN", KEY)
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "200");
    if let Some(tokens) = context {
        command.env("CLAUDE_CODE_MAX_CONTEXT_TOKENS", tokens);
    }
    run(command, Duration::from_secs(300))
}

/// The lines of Codex's `--json` output.
fn codex_events(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn still_serves(server: &Porten) {
    assert_eq!(get(server.addr, "/health").status, 200);
    let answer = post_json(
        server.addr,
        "/v1/responses",
        &json!({"model": "smollm2", "input": "Say hi.", "max_output_tokens": 3}),
        &[("authorization", &format!("Bearer {KEY}"))],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn codex_and_claude_code_run_a_turn_on_smollm2_and_show_a_prompt_too_long() {
    let dir = tempfile::tempdir().unwrap();
    // Agents send no temperature: the model's sampling defaults make SmolLM2 answer plainly.
    let config = dir.path().join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nid = \"smollm2\"\npath = \"{}\"\n[models.sampling]\ntemperature = 0\nmax_tokens = 200\n",
            support::smollm2().display()
        ),
    )
    .unwrap();
    let server = Porten::start(&["--config", config.to_str().unwrap(), "--api-key", KEY]);
    server.wait_ready();

    let small = codex_home(dir.path(), &server, false);
    let output = codex(dir.path(), &small, "Name the planet we live on.");
    assert!(
        output.status.success(),
        "codex exec failed:\n{}\n{}",
        report(&output),
        server.log()
    );
    let answers: Vec<String> = codex_events(&output)
        .iter()
        .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .map(|e| e["item"]["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        answers.iter().any(|a| a.to_lowercase().contains("earth")),
        "Codex printed no answer naming Earth:\n{}",
        report(&output)
    );

    // As shipped, Codex's prompt (~10,000 tokens) is far past SmolLM2's 4,096: porten fails the
    // response with `context_length_exceeded`, which Codex reports as the context being full.
    let shipped = codex_home(&dir.path().join("shipped"), &server, true);
    let output = codex(dir.path(), &shipped, "Name the planet we live on.");
    assert!(!output.status.success(), "{}", report(&output));
    let said = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(said.contains("context window"), "{}", report(&output));
    still_serves(&server);

    let output = claude(
        dir.path(),
        &server,
        "Name the planet we live on.",
        Some("4096"),
    );
    assert!(
        output.status.success(),
        "claude -p failed:\n{}\n{}",
        report(&output),
        server.log()
    );
    let result: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("claude printed no JSON result ({e}):\n{}", report(&output)));
    assert_eq!(result["is_error"], false, "{result}");
    assert!(
        result["result"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("earth"),
        "{result}"
    );

    // A prompt longer than the model's context: porten answers 400 "prompt is too long", which
    // Claude Code shows as such. (Told the window, Claude Code would refuse it itself.)
    let long = format!(
        "Summarize this: {}",
        "lorem ipsum dolor sit amet ".repeat(1200)
    );
    let output = claude(dir.path(), &server, &long, None);
    let result: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("claude printed no JSON result ({e}):\n{}", report(&output)));
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(
        result["api_error_status"], 400,
        "porten refused it: {result}"
    );
    let shown = result["result"].as_str().unwrap();
    assert!(shown.starts_with("Prompt is too long"), "{result}");
    // The limit Claude Code shows is the one porten's error named.
    assert!(shown.contains("limit 4095"), "{result}");
    still_serves(&server);
}
