//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use porten_proxy::config::ModelSpec;

use crate::config::{parse_model_flag, Overrides};

/// Self-host open language models behind a drop-in OpenAI endpoint.
#[derive(Debug, Parser)]
#[command(name = "porten", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// porten's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve models on an OpenAI-compatible HTTP endpoint.
    Serve(ServeArgs),
}

/// Flags of `porten serve`; each wins over the config file and `PORTEN_*` variables.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file [default: $PORTEN_HOME/porten.toml]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// porten's state directory [env: PORTEN_HOME; default: ~/.local/share/porten]
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Address to listen on [env: PORTEN_LISTEN; default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Accepted API key; repeat for several [env: PORTEN_API_KEYS, comma-separated]
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// A model to serve: a .gguf file or a model directory; repeatable
    #[arg(long = "model", value_name = "ID=PATH", value_parser = parse_model_flag)]
    pub models: Vec<ModelSpec>,
    /// Largest request body accepted, in bytes [env: PORTEN_MAX_BODY_BYTES; default: 4 MiB]
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
}

impl ServeArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            home: self.home.clone(),
            listen: self.listen,
            api_keys: self.api_keys.clone(),
            models: self.models.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}
