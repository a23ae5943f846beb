//! `porten hub`: one endpoint for a fleet of `porten serve` nodes. It holds no models: each
//! request goes, by its `model` field, to a node that has the model loaded, is loading it, or
//! is asked to load it (see `porten_hub::placement`). Nodes report every second; a node
//! silent for 3 s is out of routing. Bodies and streams pass through unchanged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use porten_hub::{Fleet, Target};
use porten_proxy::dialects::{stream_error_frame, Dialect};
use porten_proxy::http::respond::{json, prometheus};
use porten_proxy::http::{read_body, Body, MetricsText};
use porten_proxy::Error;
use serde::Deserialize;

use super::forward::{self, NodeClient};
use super::instruments::HubInstruments;
use super::node_admin;
use crate::config::{Config, FleetConfig};

/// Requests that may go to another node after their first one failed before answering.
const RETRIES: usize = 1;
/// A placement a node refuses (its budget changed, its disk is full) moves on to the next
/// candidate, up to this many nodes.
const REFUSALS: usize = 8;
/// How long a node may take to answer's head: a first request may load (and pull) a model.
const ANSWER_WITHIN: Duration = Duration::from_secs(600);
/// How long a request waiting for room sleeps between looks, unless a report comes first.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The hub's state: the fleet table and what it needs to forward.
pub struct Hub {
    fleet: Mutex<Fleet>,
    client: NodeClient,
    settings: FleetConfig,
    /// The `[server]` settings: the body bounds the hub reads requests within.
    server: porten_proxy::config::ServerConfig,
    waiting: AtomicUsize,
    reported: tokio::sync::Notify,
    metrics: Option<MetricsText>,
    instruments: HubInstruments,
}

impl Hub {
    pub(super) fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn settings(&self) -> &FleetConfig {
        &self.settings
    }

    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(super) fn client(&self) -> &NodeClient {
        &self.client
    }

    /// A node's report: into the table, and requests waiting for room look again.
    pub(super) fn reported(&self, facts: porten_hub::NodeFacts, address: String, now: Instant) {
        self.fleet().report(facts, address, now);
        self.reported.notify_waiters();
    }
}

/// Serves the hub until SIGINT or SIGTERM.
pub async fn run(config: Config, metrics: Option<MetricsText>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr()?;
    if config.fleet.token.is_none() {
        tracing::warn!("no join token (PORTEN_HUB_TOKEN): any node that reaches this hub joins");
    }
    let mut fleet = Fleet::new(Instant::now());
    if let Some(path) = &config.plugins.fleet {
        let engine = crate::plugins::engine(&config)?;
        let plugin = porten_plugins::WasmFleetPolicy::load(&engine, path)
            .map_err(|e| anyhow::anyhow!("cannot load the fleet placement plugin: {e}"))?;
        tracing::info!(plugin = %path.display(), "fleet placement plugin loaded");
        fleet = fleet.with_policy(Arc::new(plugin));
    }
    let hub = Arc::new(Hub {
        fleet: Mutex::new(fleet),
        client: forward::node_client(),
        settings: config.fleet.clone(),
        server: config.server.clone(),
        waiting: AtomicUsize::new(0),
        reported: tokio::sync::Notify::new(),
        metrics,
        instruments: HubInstruments::new(),
    });
    let _gauges = super::instruments::node_gauges(&hub);
    tokio::spawn(super::status::watch_health(hub.clone()));
    println!("porten hub listening on http://{addr}");
    tracing::info!(%addr, strategy = ?config.fleet.strategy, "hub listening");
    // The same connection layer as `porten serve`: the cap, the head, body and idle
    // timeouts, the HTTP/2 limits, and graceful shutdown.
    let handler: porten_proxy::http::Handler =
        Arc::new(move |req, peer| Box::pin(handle(hub.clone(), req, peer)));
    porten_proxy::http::serve_connections(
        listener,
        &config.server,
        handler,
        crate::serve::shutdown_signal(),
        || {},
    )
    .await;
    Ok(())
}

async fn handle(hub: Arc<Hub>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::POST, p) if p.starts_with("/hub/nodes/") => {
            super::reports::report(&hub, req, peer, &p["/hub/nodes/".len()..]).await
        }
        (&Method::GET, "/hub/status") => super::status::status(&hub),
        (&Method::GET, "/health") => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        (&Method::GET, "/metrics") => match prometheus(hub.metrics.as_ref()) {
            Ok(response) => response,
            Err(error) => Dialect::OpenAi.error_response(&error),
        },
        (&Method::GET, "/v1/models") => super::status::models(&hub),
        _ => match by_model(&hub, req, &path).await {
            Ok(response) => response,
            Err(error) => Dialect::of_path(&path).error_response(&error),
        },
    }
}

/// The field requests name their model in (`name` in Ollama's older calls).
#[derive(Deserialize)]
struct Named {
    model: Option<String>,
    name: Option<String>,
}

/// Reads the body (whole: it is small next to an answer), finds the model, and sends the
/// request to the node the fleet picks, waiting for room within the bounds.
async fn by_model(
    hub: &Arc<Hub>,
    req: Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, Error> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, &hub.server).await?;
    if body.is_empty() {
        return Err(Error::RouteNotFound {
            method: parts.method.to_string(),
            path: path.to_string(),
        });
    }
    let named: Named = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let model = named.model.or(named.name).ok_or_else(|| {
        Error::invalid(
            "model",
            "missing field `model`: the hub routes each request by it",
        )
    })?;
    let deadline = Instant::now() + hub.settings.wait();
    let mut excluded: Vec<String> = Vec::new();
    let (mut failures, mut refusals) = (0, 0);
    let mut waiting: Option<Waiting<'_>> = None;
    loop {
        let now = Instant::now();
        let decision = {
            let mut fleet = hub.fleet();
            if fleet.live_count(now) == 0 {
                return Err(Error::ModelUnavailable {
                    model,
                    reason: "no node of the fleet is reporting to the hub".into(),
                });
            }
            fleet.decide(
                &model,
                now,
                &hub.settings.placement(),
                &hub.settings.hot(),
                &excluded,
            )
        };
        if let Some(failure) = &decision.policy_failure {
            tracing::warn!(
                model = %model,
                cause = failure.cause,
                detail = %failure.detail,
                "the fleet placement plugin failed; the built-in policy decided"
            );
            hub.instruments.fell_back(failure.cause);
        }
        if let Some((node, address, evict)) = decision.second_copy {
            hub.instruments.placed(&node, "second_copy");
            tokio::spawn(node_admin::load_copy(
                hub.clone(),
                node,
                address,
                model.clone(),
                evict,
                parts.headers.clone(),
            ));
        }
        let (name, address, evict) = match decision.target {
            Target::Node {
                name,
                address,
                evict,
            } => (name, address, evict),
            Target::Unknown => {
                hub.instruments.routed("unknown");
                return Err(Error::ModelNotFound(model));
            }
            Target::Never {
                need,
                largest_budget,
            } => {
                hub.instruments.routed("never");
                return Err(Error::WillNotFit {
                    model,
                    need,
                    budget: largest_budget,
                });
            }
            Target::Wait => {
                if waiting.is_none() {
                    waiting = Some(Waiting::enter(hub, &model)?);
                    hub.instruments.routed("wait");
                }
                if now >= deadline {
                    return Err(Error::Overloaded {
                        model,
                        queued: hub.waiting(),
                        retry_after_secs: 5,
                    });
                }
                let _ = tokio::time::timeout(LOOK_EVERY, hub.reported.notified()).await;
                continue;
            }
        };
        let placing = evict.is_some();
        hub.instruments
            .routed(if placing { "place" } else { "serve" });
        if let Some(evict) = &evict {
            hub.instruments.placed(&name, "demand");
            for victim in evict {
                node_admin::unload(hub, &address, victim, &parts.headers).await;
            }
        }
        let request = forward::to_node(&address, &parts, body.clone()).map_err(|reason| {
            Error::ModelUnavailable {
                model: model.clone(),
                reason,
            }
        })?;
        let in_flight = InFlight::start(hub.clone(), &name, &model);
        let answered = match tokio::time::timeout(ANSWER_WITHIN, hub.client.request(request)).await
        {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", ANSWER_WITHIN.as_secs())),
        };
        match answered {
            Err(error) => {
                drop(in_flight);
                let mut fleet = hub.fleet();
                fleet.refused(&name, &model);
                fleet.lost(&name);
                drop(fleet);
                tracing::warn!(node = %name, model = %model, error = %error, "the node failed before answering");
                if failures == RETRIES {
                    return Err(Error::ModelUnavailable {
                        model,
                        reason: format!("node `{name}` failed before answering"),
                    });
                }
                failures += 1;
                hub.instruments.retried("node_failed");
                excluded.push(name);
            }
            Ok(answer) if placing && refused_load(answer.status()) && refusals < REFUSALS => {
                drop(in_flight);
                hub.fleet().refused(&name, &model);
                tracing::info!(node = %name, model = %model, status = %answer.status(), "the node refused the load; trying the next candidate");
                refusals += 1;
                hub.instruments.retried("load_refused");
                excluded.push(name);
            }
            Ok(answer) => {
                let broken = match forward::stream_kind(&answer) {
                    Some(ndjson) => stream_error_frame(
                        path,
                        ndjson,
                        &Error::ModelUnavailable {
                            model: model.clone(),
                            reason: format!("node `{name}` went away mid-answer"),
                        },
                    ),
                    None => Bytes::new(),
                };
                return Ok(forward::to_client(answer, &name, broken, move || {
                    drop(in_flight)
                }));
            }
        }
    }
}

/// A request the hub has sent to a node and not seen the end of, counted in the fleet's view
/// until dropped (its answer ended, or its client went away).
struct InFlight {
    hub: Arc<Hub>,
    node: String,
    model: String,
}

impl InFlight {
    fn start(hub: Arc<Hub>, node: &str, model: &str) -> Self {
        hub.fleet().started(node, model);
        Self {
            hub,
            node: node.to_string(),
            model: model.to_string(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.hub
            .fleet()
            .finished(&self.node, &self.model, Instant::now());
    }
}

/// A node's answer that says it did not take a load the hub asked for: out of memory now
/// (503), never (507), or the load failed (500).
fn refused_load(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 503 | 507)
}

/// One request waiting for room, counted against `[fleet] queue_limit`.
struct Waiting<'a>(&'a Hub);

impl<'a> Waiting<'a> {
    fn enter(hub: &'a Hub, model: &str) -> Result<Self, Error> {
        let before = hub.waiting.fetch_add(1, Ordering::SeqCst);
        let guard = Waiting(hub);
        if before >= hub.settings.queue_limit {
            return Err(Error::Overloaded {
                model: model.to_string(),
                queued: before,
                retry_after_secs: 5,
            });
        }
        Ok(guard)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
