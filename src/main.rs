//! porten's entry point: parse the command line, set up logging, hand over to the library.

use clap::Parser;
use porten::cli::{Cli, Command};
use porten::config::Config;
use porten::telemetry::Telemetry;
use porten::{mirror_cmd, store_cmd};

fn main() -> anyhow::Result<()> {
    // First of all: code compiled for AVX2 must not run on a CPU without it.
    if let Err(error) = porten::cpu::check() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(porten_main())
}

async fn porten_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env = |name: &str| std::env::var(name).ok();
    // A chat in the terminal shows warnings only (RUST_LOG still decides when set).
    let quiet = matches!(
        cli.command,
        Command::Run(_) | Command::Ps(_) | Command::Stop(_)
    );
    let mut telemetry = Telemetry::init(cli.log_format, &env, if quiet { "warn" } else { "info" });
    let result = run(cli.command, &mut telemetry).await;
    tokio::task::block_in_place(|| telemetry.shutdown());
    result
}

fn client_of(args: &porten::cli::ClientArgs) -> porten::client::Server {
    let host = args.host.as_deref().unwrap_or(porten::client::DEFAULT_HOST);
    porten::client::Server::new(host, args.api_key.clone())
}

async fn run(command: Command, telemetry: &mut Telemetry) -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let load = |overrides: &porten::config::Overrides| -> anyhow::Result<Config> {
        let (config, path) = Config::load(overrides, &env)?;
        tracing::debug!(config = %path.display(), "configuration loaded");
        Ok(config)
    };
    let store_of =
        |common: &porten::cli::Common| store_cmd::open_store(&load(&common.overrides())?);
    let store_and_mirror = |common: &porten::cli::Common| -> anyhow::Result<_> {
        let config = load(&common.overrides())?;
        Ok((
            store_cmd::open_store(&config)?,
            mirror_cmd::open_mirror(&config)?,
        ))
    };
    match command {
        Command::Serve(args) => {
            let config = load(&args.overrides())?;
            let metrics = telemetry.install_metrics(&config.telemetry, &env)?;
            porten::serve::serve(config, metrics).await
        }
        Command::Hub(args) => {
            let config = load(&args.overrides())?;
            let metrics = telemetry.install_metrics(&config.telemetry, &env)?;
            porten::fleet::hub::run(config, metrics).await
        }
        Command::Import(a) => {
            let store = store_of(&a.common)?;
            tokio::task::block_in_place(|| {
                store_cmd::import(
                    &store,
                    &a.path,
                    a.name.as_deref(),
                    a.copy,
                    a.quantize.as_deref(),
                )
            })
        }
        Command::Ls(a) if a.remote => {
            let (store, mirror) = store_and_mirror(&a.common)?;
            mirror_cmd::list(&store, &mirror, None).await
        }
        Command::Ls(a) => store_cmd::ls(&*store_of(&a.common)?, a.json),
        Command::Search(a) => {
            let (store, mirror) = store_and_mirror(&a.common)?;
            mirror_cmd::list(&store, &mirror, a.query.as_deref()).await
        }
        Command::Pull(a) => match porten_storage::hub::HubRef::parse(&a.name) {
            Some(hub) => mirror_cmd::pull_from_hub(&store_of(&a.common)?, &hub?).await,
            None => {
                let (store, mirror) = store_and_mirror(&a.common)?;
                mirror_cmd::pull(&store, &mirror, &a.name).await
            }
        },
        Command::Push(a) => {
            let (store, mirror) = store_and_mirror(&a.common)?;
            mirror_cmd::push(&store, &mirror, &a.name).await
        }
        Command::Show(a) => store_cmd::show(&*store_of(&a.common)?, &a.name),
        Command::Rm(a) => store_cmd::rm(&*store_of(&a.common)?, &a.name, a.force),
        Command::Pin(a) => store_cmd::pin(&*store_of(&a.common)?, &a.name, true),
        Command::Unpin(a) => store_cmd::pin(&*store_of(&a.common)?, &a.name, false),
        Command::Gc(common) => store_cmd::gc(&*store_of(&common)?),
        Command::Verify(a) => {
            let store = store_of(&a.common)?;
            tokio::task::block_in_place(|| store_cmd::verify(&store, a.name.as_deref()))
        }
        Command::Du(common) => store_cmd::du(&*store_of(&common)?),
        Command::Plugin(porten::cli::PluginCommand::Check(a)) => {
            let config = load(&a.common.overrides())?;
            tokio::task::block_in_place(|| porten::plugin_check::check(&config, &a.file))
        }
        Command::Fit(a) => porten::fit::fit(&load(&a.common.overrides())?, &a),
        Command::Run(a) => porten::run_cmd::run(&a, || load(&a.common.overrides())).await,
        Command::Ps(a) => porten::ps_cmd::ps(&client_of(&a.client), a.json).await,
        Command::Stop(a) => porten::ps_cmd::stop(&client_of(&a.client), &a.model).await,
    }
}
