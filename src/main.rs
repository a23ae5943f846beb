//! porten's entry point: parse the command line, set up logging, hand over to the library.

use std::io::IsTerminal;

use clap::Parser;
use porten::cli::{Cli, Command, LogFormat};
use porten::config::Config;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => {
            let env = |name: &str| std::env::var(name).ok();
            let (config, path) = Config::load(&args.overrides(), &env)?;
            tracing::info!(config = %path.display(), "configuration loaded");
            porten::serve::serve(config).await
        }
    }
}
