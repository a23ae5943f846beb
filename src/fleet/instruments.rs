//! The hub's metrics: `porten.hub.routes` (by route: serve, place, wait, never, unknown),
//! `porten.hub.placements` (by node and why: demand or a second copy), `porten.hub.retries`
//! (by reason: the node failed before answering, or refused the load),
//! `porten.hub.plugin.fallbacks` (by cause: the fleet placement plugin failed and the built-in
//! policy decided) and `porten.hub.nodes` (by health: live or out).

use std::sync::{Arc, Weak};
use std::time::Instant;

use opentelemetry::metrics::{Counter, ObservableGauge};
use opentelemetry::KeyValue;

use super::hub::Hub;

/// The hub's counters.
pub struct HubInstruments {
    routes: Counter<u64>,
    placements: Counter<u64>,
    retries: Counter<u64>,
    fallbacks: Counter<u64>,
}

impl HubInstruments {
    /// Registers them with the global meter.
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter(porten_proxy::telemetry::METER_NAME);
        Self {
            routes: meter
                .u64_counter("porten.hub.routes")
                .with_unit("{request}")
                .with_description(
                    "Requests the hub routed, by how: serve, place, wait, never, unknown",
                )
                .build(),
            placements: meter
                .u64_counter("porten.hub.placements")
                .with_unit("{placement}")
                .with_description("Models the hub asked a node to load, by node and reason")
                .build(),
            retries: meter
                .u64_counter("porten.hub.retries")
                .with_unit("{retry}")
                .with_description("Requests sent to another node, by reason")
                .build(),
            fallbacks: meter
                .u64_counter("porten.hub.plugin.fallbacks")
                .with_unit("{decision}")
                .with_description(
                    "Placements the built-in policy made because the plugin failed, by cause",
                )
                .build(),
        }
    }

    /// A request was routed `how`.
    pub fn routed(&self, how: &'static str) {
        self.routes
            .add(1, &[KeyValue::new("porten.hub.route", how)]);
    }

    /// `node` was asked to load a model, for `why`.
    pub fn placed(&self, node: &str, why: &'static str) {
        self.placements.add(
            1,
            &[
                KeyValue::new("porten.hub.node", node.to_string()),
                KeyValue::new("porten.hub.reason", why),
            ],
        );
    }

    /// The fleet plugin failed a decision, for `cause`.
    pub fn fell_back(&self, cause: &'static str) {
        self.fallbacks
            .add(1, &[KeyValue::new("porten.plugin.cause", cause)]);
    }

    /// A request moved to another node, for `why`.
    pub fn retried(&self, why: &'static str) {
        self.retries
            .add(1, &[KeyValue::new("porten.hub.reason", why)]);
    }
}

/// `porten.hub.nodes`, read from the fleet at each collection.
pub fn node_gauges(hub: &Arc<Hub>) -> ObservableGauge<u64> {
    let hub: Weak<Hub> = Arc::downgrade(hub);
    opentelemetry::global::meter(porten_proxy::telemetry::METER_NAME)
        .u64_observable_gauge("porten.hub.nodes")
        .with_unit("{node}")
        .with_description("Nodes that reported to the hub, by health: live or out")
        .with_callback(move |observer| {
            let Some(hub) = hub.upgrade() else { return };
            let now = Instant::now();
            let fleet = hub.fleet();
            let live = fleet.live_count(now) as u64;
            let all = fleet.members().count() as u64;
            observer.observe(live, &[KeyValue::new("porten.hub.health", "live")]);
            observer.observe(all - live, &[KeyValue::new("porten.hub.health", "out")]);
        })
        .build()
}
