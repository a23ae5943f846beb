//! `porten run MODEL [PROMPT]`: Ollama's `run` for porten. With a prompt (or a piped stdin) it
//! prints the answer as it is generated and exits, for scripts; in a terminal without one it is
//! a chat: `>>> ` prompts, answers streamed, `"""` for multi-line input, `/clear` forgets the
//! conversation, `/bye` (or Ctrl-D) leaves, and Ctrl-C stops an answer without leaving. It talks
//! to the running server (`--host`, `PORTEN_HOST`), or starts one in this process when none
//! answers, and pulls the model from the team mirror first when the server lacks it.

use std::io::{IsTerminal, Read, Write};

use anyhow::bail;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::client::{Server, DEFAULT_HOST};
use crate::config::Config;

const HELP: &str = "Available commands:
  /clear   Forget the conversation so far
  /bye     Leave (Ctrl-D too)
  /?       This help
Use \"\"\" to begin and end a message of several lines. Ctrl-C stops an answer.";

/// Runs `porten run`; `config` loads the configuration for a server in this process.
pub async fn run(
    args: &RunArgs,
    config: impl FnOnce() -> anyhow::Result<Config>,
) -> anyhow::Result<()> {
    let host = args.client.host.as_deref().unwrap_or(DEFAULT_HOST);
    let mut server = Server::new(host, args.client.api_key.clone());
    if !server.is_up().await {
        let config = config()?;
        let key = config.server.api_keys.first().cloned();
        eprintln!(
            "no porten answers at {}; serving in this process",
            server.base()
        );
        let addr = crate::serve::spawn_local(config).await?;
        server = Server::new(&addr.to_string(), key.or(args.client.api_key.clone()));
    }
    let model = args.model.clone();
    ensure_pulled(&server, &model).await?;
    let mut options = serde_json::Map::new();
    if let Some(n) = args.max_tokens {
        options.insert("num_predict".into(), json!(n));
    }
    if let Some(t) = args.temperature {
        options.insert("temperature".into(), json!(t));
    }
    let chat = Chat {
        server,
        model,
        options: Value::Object(options),
    };
    let prompt = args.prompt.join(" ");
    if !prompt.is_empty() {
        return chat.once(prompt).await;
    }
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return chat.once(text).await;
    }
    chat.converse().await
}

/// Pulls `model` from the mirror through the server when the server does not list it, with a
/// progress bar on a terminal.
async fn ensure_pulled(server: &Server, model: &str) -> anyhow::Result<()> {
    let tags = server.get("/api/tags").await?;
    let listed = |name: &str| {
        tags["models"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["name"] == name || m["name"] == format!("{name}:latest"))
    };
    // A mirror model the server lists is pulled on its first request anyway; a model it does
    // not list may still be in the mirror.
    if listed(model) {
        return Ok(());
    }
    let mut lines = server
        .stream("/api/pull", &json!({ "model": model }))
        .await?;
    let bar = crate::progress::bar_for_terminal();
    let mut last = String::new();
    while let Some(line) = lines.next().await? {
        let status = line["status"].as_str().unwrap_or_default();
        if let (Some(bar), Some(total)) = (&bar, line["total"].as_u64()) {
            bar.set_length(total);
            bar.set_position(line["completed"].as_u64().unwrap_or(0));
            bar.set_message(status.to_string());
        } else if bar.is_none() && status != last {
            // Without a terminal, each step once.
            eprintln!("{status}");
        }
        last = status.to_string();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

struct Chat {
    server: Server,
    model: String,
    /// Ollama's `options` for every answer.
    options: Value,
}

/// How an answer ended.
enum Answered {
    /// Whole: its text.
    Whole(String),
    /// Stopped by Ctrl-C.
    Stopped,
}

impl Chat {
    /// Answers one prompt on stdout and returns.
    async fn once(&self, prompt: String) -> anyhow::Result<()> {
        let messages = [json!({"role": "user", "content": prompt})];
        self.answer(&messages, false).await?;
        Ok(())
    }

    /// Streams the answer to `messages` to stdout. With `interruptible`, Ctrl-C stops it
    /// (closing the stream, which cancels the generation on the server).
    async fn answer(&self, messages: &[Value], interruptible: bool) -> anyhow::Result<Answered> {
        let body = json!({"model": self.model, "messages": messages, "stream": true,
                          "options": self.options});
        let mut lines = self.server.stream("/api/chat", &body).await?;
        let mut text = String::new();
        let mut out = std::io::stdout();
        loop {
            let next = if interruptible {
                tokio::select! {
                    next = lines.next() => next?,
                    _ = tokio::signal::ctrl_c() => {
                        println!();
                        return Ok(Answered::Stopped);
                    }
                }
            } else {
                lines.next().await?
            };
            let Some(line) = next else { break };
            if let Some(piece) = line["message"]["content"].as_str() {
                text.push_str(piece);
                print!("{piece}");
                out.flush()?;
            }
            if line["done"] == true {
                break;
            }
        }
        println!();
        Ok(Answered::Whole(text))
    }

    /// The chat in the terminal.
    async fn converse(&self) -> anyhow::Result<()> {
        let mut input = read_lines();
        let mut history: Vec<Value> = Vec::new();
        loop {
            let Some(message) = prompt_for_message(&mut input).await? else {
                return Ok(());
            };
            match message.trim() {
                "" => continue,
                "/bye" => return Ok(()),
                "/clear" => {
                    history.clear();
                    println!("Cleared session context");
                    continue;
                }
                "/?" | "/help" => {
                    println!("{HELP}");
                    continue;
                }
                command if command.starts_with('/') && !command.contains(' ') => {
                    println!("Unknown command '{command}'. Type /? for help");
                    continue;
                }
                _ => {}
            }
            history.push(json!({"role": "user", "content": message}));
            match self.answer(&history, true).await {
                Ok(Answered::Whole(text)) => {
                    history.push(json!({"role": "assistant", "content": text}));
                }
                Ok(Answered::Stopped) => {
                    history.pop();
                }
                Err(e) => {
                    history.pop();
                    eprintln!("error: {e:#}");
                }
            }
        }
    }
}

/// stdin's lines, read on a thread of their own so that Ctrl-C can be heard while waiting.
fn read_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Prompts with `>>> ` and reads one message (several lines between `"""`); `None` at the end
/// of input (Ctrl-D). Ctrl-C at the prompt says how to leave.
async fn prompt_for_message(
    input: &mut mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<Option<String>> {
    let mut out = std::io::stdout();
    print!(">>> ");
    out.flush()?;
    let Some(first) = next_line(input).await? else {
        println!();
        return Ok(None);
    };
    let Some(rest) = first.trim_start().strip_prefix("\"\"\"") else {
        return Ok(Some(first));
    };
    if let Some(whole) = rest.strip_suffix("\"\"\"") {
        return Ok(Some(whole.to_string()));
    }
    let mut lines = vec![rest.to_string()];
    loop {
        print!("... ");
        out.flush()?;
        let Some(line) = next_line(input).await? else {
            bail!("the input ended inside a \"\"\" message");
        };
        if let Some(last) = line.strip_suffix("\"\"\"") {
            lines.push(last.to_string());
            return Ok(Some(lines.join("\n").trim().to_string()));
        }
        lines.push(line);
    }
}

async fn next_line(input: &mut mpsc::UnboundedReceiver<String>) -> anyhow::Result<Option<String>> {
    loop {
        tokio::select! {
            line = input.recv() => return Ok(line),
            _ = tokio::signal::ctrl_c() => {
                print!("\nUse Ctrl + d or /bye to exit.\n>>> ");
                std::io::stdout().flush()?;
            }
        }
    }
}
