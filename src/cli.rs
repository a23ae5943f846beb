//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use porten_proxy::config::ModelSpec;
use porten_proxy::residency::KeepAlive;

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
    /// One endpoint for many machines: route each request to a `porten serve --hub` node that
    /// has its model, or ask one with room to load it.
    Hub(HubArgs),
    /// Import a .gguf file, a model directory or a Hugging Face cache snapshot into the store.
    Import(ImportArgs),
    /// List the models in the store (or, with --remote, in the mirror).
    Ls(LsArgs),
    /// Download a model into the store: from the mirror (only the blobs the store lacks), or
    /// from Hugging Face (`hf://ORG/REPO[@REVISION][:QUANT]`, `hf.co/ORG/REPO:QUANT`).
    Pull(NamedArgs),
    /// Upload a model from the store to the mirror (only the blobs the mirror lacks).
    Push(NamedArgs),
    /// List the mirror's models whose name contains QUERY (all of them without one).
    Search(SearchArgs),
    /// Show one model's files and metadata.
    Show(NamedArgs),
    /// Remove a model (its blobs go unless another model shares them).
    Rm(RmArgs),
    /// Pin a model: it is never evicted to make room.
    Pin(NamedArgs),
    /// Unpin a model.
    Unpin(NamedArgs),
    /// Remove blobs no model refers to and what crashed processes left behind.
    Gc(Common),
    /// Rehash blobs; corrupt ones are quarantined and reported (exit status 1).
    Verify(VerifyArgs),
    /// Show the disk budget, what is used and what could be reclaimed.
    Du(Common),
    /// WebAssembly policy plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Show which models fit in a memory budget: weights, KV cache, headroom, and the context
    /// lengths that fit.
    Fit(FitArgs),
    /// Chat with a model in the terminal, or answer one prompt (or stdin) and exit. Talks to
    /// the running server, or starts one in this process when none answers.
    Run(RunArgs),
    /// The running server's loaded models: memory, context, keep-alive left, requests.
    Ps(PsArgs),
    /// Unload a model from the running server.
    Stop(StopArgs),
}

/// Where the running server is, for `run`, `ps` and `stop`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientArgs {
    /// The server: `127.0.0.1:8080` or `http://host:port` [default: http://127.0.0.1:8080]
    #[arg(long, env = "PORTEN_HOST")]
    pub host: Option<String>,
    /// Its API key, when it has keys
    #[arg(long, env = "PORTEN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `porten run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The model (`smollm2`, `name:tag`); pulled from the mirror first when the server lacks it
    pub model: String,
    /// A prompt: answer it and exit (without one, and with a terminal, chat)
    pub prompt: Vec<String>,
    /// Most tokens per answer [default: the model's, else what its context leaves]
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Sampling temperature, 0 (greedy) to 2 [default: the model's, else 1]
    #[arg(long)]
    pub temperature: Option<f64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `porten stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// The model to unload
    pub model: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `porten plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a component, say which world it implements, run it through sample decisions (3, 8
    /// and 1000 candidates) and print its answers and per-call timings.
    Check(PluginCheckArgs),
}

/// `porten plugin check`.
#[derive(Debug, clap::Args)]
pub struct PluginCheckArgs {
    /// The component (`.wasm`)
    pub file: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten fit`.
#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// Models to size: store models (`NAME[:TAG]`), or Hugging Face ones
    /// (`hf://ORG/REPO:QUANT`, sized from the Hub's listing before a byte is pulled)
    /// [default: every model in the store, unless --params describes a hypothetical one]
    pub names: Vec<String>,
    /// The budget in MiB [default: PORTEN_VRAM_BUDGET_MB, else what serve would detect]
    #[arg(long, value_name = "MIB")]
    pub vram_mb: Option<u64>,
    /// A hypothetical model's parameter count, all experts included: 7B, 32B, 135M
    #[arg(long, value_name = "COUNT")]
    pub params: Option<String>,
    /// Its quantization: f16, q8_0, q6_k, q5_k_m, q4_k_m, q3_k_m, q2_k...
    #[arg(long, default_value = "q4_k_m", requires = "params")]
    pub quant: String,
    /// For a mixture of experts: parameters active per token (3B); memory still holds all
    #[arg(long, value_name = "COUNT", requires = "params")]
    pub moe_active: Option<String>,
    /// Context length per sequence [default: the model's configured context_length, else
    /// 4096 capped at what it was trained for]
    #[arg(long)]
    pub ctx: Option<u64>,
    /// Sequences served at once, each with its own KV cache [default: the model's
    /// max_concurrency, else 4]
    #[arg(long)]
    pub parallel: Option<u64>,
    /// Print JSON (sizes in bytes) instead of a table
    #[arg(long)]
    pub json: bool,
    /// The hardware guide's GPU tiers (8-12 GB to 256 GB) for the model: where it fits and
    /// the longest context that fits at each, beside the largest model class that runs
    /// well at Q4 there [sizes one sequence of 8192 tokens unless --ctx/--parallel say]
    #[arg(long)]
    pub tiers: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// Flags every subcommand takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Common {
    /// Configuration file [default: $PORTEN_HOME/porten.toml]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// porten's state directory [env: PORTEN_HOME; default: ~/.local/share/porten]
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Disk budget of the weight store in MiB [env: PORTEN_AUTO_DOWNLOAD_MB; default: no limit]
    #[arg(long, value_name = "MIB")]
    pub budget_mb: Option<u64>,
    /// The mirror: s3://bucket/prefix, gs://..., az://..., file:///path, https://... (read-only)
    /// [env: PORTEN_MIRROR]
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
}

impl Common {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            home: self.home.clone(),
            budget_mb: self.budget_mb,
            mirror: self.mirror.clone(),
            ..Default::default()
        }
    }
}

/// `porten import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A .gguf file, a model directory, or a Hugging Face cache snapshot
    /// (`models--org--name` or `models--org--name/snapshots/<rev>`)
    pub path: PathBuf,
    /// Name to store it under, `NAME[:TAG]` [default: from the file or repository name]
    #[arg(long)]
    pub name: Option<String>,
    /// Copy the bytes even where a reflink or hard link would do
    #[arg(long)]
    pub copy: bool,
    /// Requantize a GGUF file to this ggml type first (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K...) and
    /// store that instead [default name: the source's, tagged with the type]
    #[arg(long, value_name = "TYPE")]
    pub quantize: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// List the mirror's models instead of the store's
    #[arg(long)]
    pub remote: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Part of a model name (case-insensitive)
    pub query: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// A subcommand that names one model.
#[derive(Debug, clap::Args)]
pub struct NamedArgs {
    /// `NAME[:TAG]`
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// `NAME[:TAG]`
    pub name: String,
    /// Remove even if pinned
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// `porten verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Only this model's blobs [default: every blob]
    pub name: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// Flags of `porten serve`; each wins over the config file and `PORTEN_*` variables.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Address to listen on [env: PORTEN_LISTEN; default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Accepted API key; repeat for several [env: PORTEN_API_KEYS, comma-separated]
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// A model to serve: ID=PATH (a .gguf file or a model directory) or a store name; repeatable
    /// [default: every model in the store]
    #[arg(long = "model", value_name = "ID=PATH|NAME", value_parser = parse_model_flag)]
    pub models: Vec<ModelSpec>,
    /// Largest request body accepted, in bytes [env: PORTEN_MAX_BODY_BYTES; default: 4 MiB]
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// MiB that loaded models may take together [env: PORTEN_VRAM_BUDGET_MB; default: 90% of
    /// available memory on the CPU, no limit on GPUs]
    #[arg(long, value_name = "MIB")]
    pub vram_budget_mb: Option<u64>,
    /// How long a model stays loaded after its last request: seconds, 30s, 5m, 1h; -1 forever
    /// [env: PORTEN_KEEP_ALIVE; default: 5m]
    #[arg(long, value_name = "DURATION", value_parser = KeepAlive::parse, allow_hyphen_values = true)]
    pub keep_alive: Option<KeepAlive>,
    /// Record no metrics and serve no /metrics [env: PORTEN_METRICS=off]
    #[arg(long)]
    pub no_metrics: bool,
    /// Join this hub (`http://HOST:PORT`) as one of its nodes [env: PORTEN_HUB]
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,
    /// This node's name in the fleet [env: PORTEN_NODE_NAME; default: the host name]
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
}

/// `porten hub`.
#[derive(Debug, clap::Args)]
pub struct HubArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
    /// Address to listen on [env: PORTEN_LISTEN; default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Record no metrics and serve no /metrics [env: PORTEN_METRICS=off]
    #[arg(long)]
    pub no_metrics: bool,
}

impl HubArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            no_metrics: self.no_metrics,
            ..self.common.overrides()
        }
    }
}

impl ServeArgs {
    /// The flags as configuration overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            api_keys: self.api_keys.clone(),
            models: self.models.clone(),
            max_body_bytes: self.max_body_bytes,
            vram_budget_mb: self.vram_budget_mb,
            keep_alive: self.keep_alive,
            no_metrics: self.no_metrics,
            hub: self.hub.clone(),
            node_name: self.node_name.clone(),
            ..self.common.overrides()
        }
    }
}
