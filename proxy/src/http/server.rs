//! Accepting connections: TCP_NODELAY on every socket, the connection cap (a new connection
//! displaces an idle one, or is refused quickly when all are busy), and graceful shutdown.
//! `porten serve` and `porten hub` both serve through [`serve_connections`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection;
use super::connections::{Admit, Connections};
use super::file_limit;
use super::handle::handle;
use super::state::{MetricsText, ServerState};
use super::Body;
use crate::config::ServerConfig;
use crate::models::ModelRegistry;
use crate::telemetry::instruments;
use crate::Result;

/// Answers one request from a peer: what a server on porten's connection layer serves.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>, SocketAddr) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// A server bound to its address, not yet accepting.
pub struct BoundServer {
    listener: TcpListener,
    state: Arc<ServerState>,
}

impl BoundServer {
    /// Binds `config.listen`. `metrics` renders `GET /metrics`; without it the route says
    /// metrics are off.
    pub async fn bind(
        config: ServerConfig,
        models: Arc<ModelRegistry>,
        metrics: Option<MetricsText>,
    ) -> Result<Self> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen).await?;
        let state = Arc::new(ServerState::new(config, models, metrics));
        Ok(Self { listener, state })
    }

    /// Gives the server its models' facts and store actions (Ollama's `/api/tags`, `/api/pull`,
    /// `/api/delete`, `/api/copy`).
    pub fn with_catalog(mut self, catalog: Arc<dyn crate::catalog::Catalog>) -> Self {
        Arc::get_mut(&mut self.state)
            .expect("the state is not shared before the server runs")
            .catalog = Some(catalog);
        self
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then stops accepting, refuses queued work, and gives
    /// in-flight requests up to `shutdown_grace_secs` to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let BoundServer { listener, state } = self;
        let handler: Handler = {
            let state = state.clone();
            Arc::new(move |req, peer| Box::pin(handle(state.clone(), peer, req)))
        };
        let config = state.config.clone();
        serve_connections(listener, &config, handler, shutdown, || {
            state.models.close()
        })
        .await;
        Ok(())
    }
}

/// Accepts on `listener` until `shutdown` resolves, serving every connection with `handler`
/// under `config.connections` (the cap, head, body and idle timeouts, HTTP/2 limits). Then
/// stops accepting, calls `stopping`, and gives in-flight requests up to
/// `config.shutdown_grace_secs` to finish.
pub async fn serve_connections(
    listener: TcpListener,
    config: &ServerConfig,
    handler: Handler,
    shutdown: impl Future<Output = ()>,
    stopping: impl FnOnce(),
) {
    let limits = &config.connections;
    // Unreadable limits are rare enough that the smallest common one is a fine guess.
    let cap = limits.max_connections_for(file_limit::current().unwrap_or(1024));
    let book = Connections::new(limits, cap);
    tracing::info!(
        max_connections = book.cap(),
        head_timeout_secs = limits.head_timeout_secs,
        body_timeout_secs = limits.body_timeout_secs,
        idle_timeout_secs = limits.idle_timeout_secs,
        "connection limits"
    );
    let builder = Arc::new(connection::builder(limits));
    let refusal = Arc::new(connection::refusal_builder());
    // Every connection holds a receiver: `closed()` resolves when the last one has ended.
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        match book.admit() {
            Admit::Serve(registered) => {
                tokio::spawn(connection::serve(
                    builder.clone(),
                    book.clone(),
                    handler.clone(),
                    stream,
                    peer,
                    registered,
                    stopped.clone(),
                ));
            }
            Admit::Refuse => {
                instruments().connections_refused.add(1, &[]);
                tracing::debug!(%peer, "refusing a connection at the connection cap");
                // Past a bound on refusals in progress, a plain close is all there is.
                if let Some(refusing) = book.refusing() {
                    tokio::spawn(connection::refuse(refusal.clone(), stream, refusing));
                }
            }
        }
    }
    drop(listener);
    drop(stopped);
    stopping();
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; dropping the remaining connections"),
    }
}
