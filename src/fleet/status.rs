//! What the hub shows: `GET /hub/status` (every node with its models and how fresh its report
//! is, the recent placement decisions with their reasons, the settings), `GET /v1/models`
//! (every model some live node offers), and a log line when a node drops out or comes back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use http::{Response, StatusCode};
use porten_hub::{ModelFacts, Offer, PlacementRecord};
use porten_proxy::http::respond::json;
use porten_proxy::http::Body;
use serde::Serialize;

use super::hub::Hub;

#[derive(Serialize)]
struct Status<'a> {
    nodes: Vec<NodeStatus<'a>>,
    /// The latest placement decisions, oldest first.
    placements: Vec<&'a PlacementRecord>,
    /// Requests waiting at the hub for room.
    waiting: usize,
    settings: &'a crate::config::FleetConfig,
}

#[derive(Serialize)]
struct NodeStatus<'a> {
    name: &'a str,
    address: &'a str,
    /// Reported within the last 3 s (and no request to it failed since).
    live: bool,
    last_report_ms: u64,
    budget_bytes: u64,
    reserved_bytes: u64,
    free_bytes: u64,
    models: &'a [ModelFacts],
    store: &'a [String],
    catalog: &'a [Offer],
}

/// `GET /hub/status`.
pub fn status(hub: &Hub) -> Response<Body> {
    let now = Instant::now();
    let fleet = hub.fleet();
    let nodes = fleet
        .members()
        .map(|m| NodeStatus {
            name: &m.facts.name,
            address: &m.address,
            live: m.is_live(now),
            last_report_ms: now.saturating_duration_since(m.seen).as_millis() as u64,
            budget_bytes: m.facts.budget_bytes,
            reserved_bytes: m.facts.reserved_bytes,
            free_bytes: m.facts.free_bytes(),
            models: &m.facts.models,
            store: &m.facts.store,
            catalog: &m.facts.catalog,
        })
        .collect();
    json(
        StatusCode::OK,
        &Status {
            nodes,
            placements: fleet.decisions().collect(),
            waiting: hub.waiting(),
            settings: hub.settings(),
        },
    )
}

/// `GET /v1/models`: what the live nodes offer, in OpenAI's shape.
pub fn models(hub: &Hub) -> Response<Body> {
    let now = Instant::now();
    let fleet = hub.fleet();
    let names: BTreeSet<&str> = fleet
        .live(now)
        .flat_map(|m| m.facts.catalog.iter().map(|o| o.model.as_str()))
        .collect();
    let data: Vec<serde_json::Value> = names
        .into_iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "porten"}))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

/// Logs each node that drops out of routing (silent for 3 s) and each that comes back.
pub async fn watch_health(hub: Arc<Hub>) {
    // The live nodes' names, with their addresses.
    let mut live: HashMap<String, String> = HashMap::new();
    let mut ticks = tokio::time::interval(porten_hub::fleet::REPORT_EVERY / 4);
    loop {
        ticks.tick().await;
        let live_now: HashMap<String, String> = hub
            .fleet()
            .live(Instant::now())
            .map(|m| (m.facts.name.clone(), m.address.clone()))
            .collect();
        for (name, address) in live_now.iter().filter(|(n, _)| !live.contains_key(*n)) {
            tracing::info!(node = %name, %address, "node joined");
        }
        for name in live.keys().filter(|n| !live_now.contains_key(*n)) {
            tracing::warn!(node = %name, "node out of routing: no report for 3 s, or a request to it failed");
        }
        live = live_now;
    }
}
