//! `porten serve`: resolve models, bind, announce the address, load, serve until a signal.

use std::sync::Arc;

use anyhow::Context;
use porten_proxy::models::ModelRegistry;
use porten_proxy::BoundServer;

use crate::config::Config;

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Every model path is checked before the port is taken: a typo is a start-up error.
    let models = Arc::new(ModelRegistry::resolve(&config.models)?);
    let server = BoundServer::bind(config.server.clone(), models.clone())
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = server.local_addr()?;
    // A stable line on stdout, for scripts and tests that asked for port 0.
    println!("porten listening on http://{addr}");
    tracing::info!(%addr, models = config.models.len(), "listening");
    tokio::spawn(async move { models.load_all().await });
    server.run(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
