//! Where a request for a model goes, from the fleet's facts alone:
//! 1. to a node where the model is loaded, the least busy (requests in flight and queued);
//! 2. else to a node where it is loading (it queues there);
//! 3. else the hub places it: among nodes whose budget can ever hold its estimate, one where
//!    it fits without unloading anything (its weights already in the store first, then the
//!    most free memory, or the least that fits when bin-packing); else the node whose idle
//!    models can make room and are the fleet's least recently used (never a busy model,
//!    never one loaded less than the minimum age ago, so models do not thrash, nor one used
//!    within the last second);
//! 4. else nowhere now: the request waits at the hub, or is refused when no node could ever
//!    hold the model.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::facts::{ModelFacts, ModelState, NodeFacts};

/// How to choose among nodes where a model fits without unloading anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The node with the most free memory: models spread, and each node keeps room.
    #[default]
    Spread,
    /// The node with the least free memory that still fits: whole nodes stay free for
    /// large models.
    BinPack,
}

/// The built-in policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlacementSettings {
    /// Spread or bin-pack.
    pub strategy: Strategy,
    /// A model loaded less than this many milliseconds ago is never unloaded for another.
    pub min_age_ms: u64,
}

impl Default for PlacementSettings {
    fn default() -> Self {
        Self {
            strategy: Strategy::Spread,
            min_age_ms: 30_000,
        }
    }
}

/// A decision to load a model on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The node (an index into the fleet).
    pub node: usize,
    /// Idle models the node unloads first, least recently used first.
    pub evict: Vec<String>,
    /// Whether the node must pull the weights (its store lacks them).
    pub pull: bool,
    /// Why this node, for `/hub/status`.
    pub reason: String,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// To a node that has the model loaded.
    Serve {
        /// The node.
        node: usize,
    },
    /// To a node loading the model; the request queues there.
    Queue {
        /// The node.
        node: usize,
    },
    /// Ask a node to load the model, then send the request there.
    Place(Placement),
    /// No node can take it now (busy or young models fill every node that could); wait.
    Wait,
    /// No node's budget can ever hold it.
    Never {
        /// The largest budget in the fleet, in bytes.
        largest_budget: u64,
    },
}

/// Where a request for `model`, which needs `estimate` bytes, goes in `fleet`.
pub fn route(
    fleet: &[NodeFacts],
    model: &str,
    estimate: u64,
    settings: &PlacementSettings,
) -> Route {
    let holding = |state: ModelState| {
        fleet
            .iter()
            .enumerate()
            .filter_map(move |(i, n)| n.model(model).filter(|m| m.state == state).map(|m| (i, m)))
            .min_by_key(|(i, m)| (m.in_flight + m.queued, fleet[*i].name.as_str()))
            .map(|(i, _)| i)
    };
    if let Some(node) = holding(ModelState::Loaded) {
        return Route::Serve { node };
    }
    if let Some(node) = holding(ModelState::Loading) {
        return Route::Queue { node };
    }
    let able: Vec<usize> = (0..fleet.len())
        .filter(|&i| fleet[i].budget_bytes >= estimate)
        .collect();
    if able.is_empty() {
        return Route::Never {
            largest_budget: fleet.iter().map(|n| n.budget_bytes).max().unwrap_or(0),
        };
    }
    if let Some(placement) = without_evicting(fleet, &able, model, estimate, settings.strategy) {
        return Route::Place(placement);
    }
    match evicting(fleet, &able, model, estimate, settings.min_age_ms) {
        Some(placement) => Route::Place(placement),
        None => Route::Wait,
    }
}

fn without_evicting(
    fleet: &[NodeFacts],
    able: &[usize],
    model: &str,
    estimate: u64,
    strategy: Strategy,
) -> Option<Placement> {
    let fits = able
        .iter()
        .copied()
        .filter(|&i| fleet[i].free_bytes() >= estimate);
    let node = match strategy {
        Strategy::Spread => fits.max_by_key(|&i| {
            let n = &fleet[i];
            (
                n.has_weights(model),
                n.free_bytes(),
                Reverse(n.name.as_str()),
            )
        }),
        Strategy::BinPack => fits.max_by_key(|&i| {
            let n = &fleet[i];
            (
                n.has_weights(model),
                Reverse(n.free_bytes()),
                Reverse(n.name.as_str()),
            )
        }),
    }?;
    let n = &fleet[node];
    let pull = !n.has_weights(model);
    Some(Placement {
        node,
        evict: Vec::new(),
        pull,
        reason: format!(
            "fits without unloading ({} MiB free of {} MiB){}",
            n.free_bytes() >> 20,
            n.budget_bytes >> 20,
            if pull { "" } else { "; weights in its store" }
        ),
    })
}

/// The node whose unloadable models make room and whose most recently used victim is the
/// least recently used across the fleet: the fleet's LRU, in node-sized steps.
fn evicting(
    fleet: &[NodeFacts],
    able: &[usize],
    model: &str,
    estimate: u64,
    min_age_ms: u64,
) -> Option<Placement> {
    // One buffer for every node's candidates, and victims named only for the chosen node:
    // with a thousand nodes this is the hot loop of a miss.
    let mut idle: Vec<&ModelFacts> = Vec::new();
    // (the idle time of the most recently used victim needed, weights in store, node)
    let mut best: Option<(u64, bool, usize)> = None;
    for &i in able {
        let node = &fleet[i];
        unloadable(node, min_age_ms, &mut idle);
        let mut free = node.free_bytes();
        let mut freshest = u64::MAX;
        for m in &idle {
            if free >= estimate {
                break;
            }
            free = free.saturating_add(m.bytes);
            freshest = freshest.min(m.idle_ms);
        }
        if free < estimate {
            continue;
        }
        // The least recently used victims first; with equal ones, weights in the store.
        let key = (freshest, node.has_weights(model), i);
        if best.is_none_or(|(f, w, _)| (key.0, key.1) > (f, w)) {
            best = Some(key);
        }
    }
    let (freshest, _, node) = best?;
    let mut placement = place_on(fleet, node, model, estimate, min_age_ms, String::new())?;
    placement.reason = format!(
        "unloads {} idle model(s), the fleet's least recently used (idle {} s or more)",
        placement.evict.len(),
        freshest / 1000
    );
    Some(placement)
}

/// Loading `model` on `node`, unloading its least recently used idle models until it fits:
/// `None` when even all of them would not make room.
pub fn place_on(
    fleet: &[NodeFacts],
    node: usize,
    model: &str,
    estimate: u64,
    min_age_ms: u64,
    reason: String,
) -> Option<Placement> {
    let n = fleet.get(node)?;
    if n.budget_bytes < estimate {
        return None;
    }
    let mut idle = Vec::new();
    unloadable(n, min_age_ms, &mut idle);
    let mut free = n.free_bytes();
    let mut evict = Vec::new();
    for m in &idle {
        if free >= estimate {
            break;
        }
        free = free.saturating_add(m.bytes);
        evict.push(m.model.clone());
    }
    (free >= estimate).then(|| Placement {
        node,
        evict,
        pull: !n.has_weights(model),
        reason,
    })
}

/// A model whose last request ended less than this long ago is not idle yet: reports are up
/// to a second old, and a model used that recently may well be serving a request they missed.
pub const MIN_IDLE_MS: u64 = 1_000;

/// `node`'s models that may be unloaded for another (loaded, idle for [`MIN_IDLE_MS`], old
/// enough) into `idle`, least recently used first.
pub(crate) fn unloadable<'a>(node: &'a NodeFacts, min_age_ms: u64, idle: &mut Vec<&'a ModelFacts>) {
    idle.clear();
    idle.extend(node.models.iter().filter(|m| {
        m.state == ModelState::Loaded
            && !m.busy()
            && m.idle_ms >= MIN_IDLE_MS
            && m.loaded_ms >= min_age_ms
    }));
    idle.sort_unstable_by(|a, b| b.idle_ms.cmp(&a.idle_ms).then(a.model.cmp(&b.model)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn node(
        name: &str,
        budget_gib: u64,
        models: &[(&str, u64, u32, u64)],
        store: &[&str],
    ) -> NodeFacts {
        let models: Vec<ModelFacts> = models
            .iter()
            .map(|(model, gib, in_flight, idle_s)| ModelFacts {
                model: model.to_string(),
                state: ModelState::Loaded,
                bytes: gib * GIB,
                in_flight: *in_flight,
                queued: 0,
                idle_ms: idle_s * 1000,
                loaded_ms: 3_600_000,
            })
            .collect();
        NodeFacts {
            name: name.into(),
            budget_bytes: budget_gib * GIB,
            reserved_bytes: models.iter().map(|m| m.bytes).sum(),
            models,
            store: store.iter().map(|s| s.to_string()).collect(),
            catalog: Vec::new(),
        }
    }

    fn settings() -> PlacementSettings {
        PlacementSettings::default()
    }

    #[test]
    fn a_loaded_model_is_served_by_its_least_busy_node() {
        let fleet = [
            node("a", 24, &[("m", 8, 3, 0)], &[]),
            node("b", 24, &[("m", 8, 1, 0)], &[]),
        ];
        assert_eq!(
            route(&fleet, "m", 8 * GIB, &settings()),
            Route::Serve { node: 1 }
        );
    }

    #[test]
    fn a_node_with_the_weights_beats_one_with_more_room() {
        let fleet = [node("a", 80, &[], &[]), node("b", 24, &[], &["m"])];
        let Route::Place(p) = route(&fleet, "m", 8 * GIB, &settings()) else {
            panic!()
        };
        assert_eq!((p.node, p.pull), (1, false));
        let Route::Place(p) = route(&fleet, "other", 8 * GIB, &settings()) else {
            panic!()
        };
        assert_eq!((p.node, p.pull), (0, true), "spread: the most free");
        let pack = PlacementSettings {
            strategy: Strategy::BinPack,
            ..settings()
        };
        let Route::Place(p) = route(&fleet, "other", 8 * GIB, &pack) else {
            panic!()
        };
        assert_eq!(p.node, 1, "bin-pack: the least free that fits");
    }

    #[test]
    fn the_fleets_least_recently_used_idle_model_goes_never_a_busy_or_young_one() {
        let mut fleet = [
            node("a", 24, &[("busy", 20, 1, 0)], &[]),
            node("b", 24, &[("recent", 20, 0, 60)], &[]),
            node("c", 24, &[("stale", 20, 0, 600)], &[]),
        ];
        let Route::Place(p) = route(&fleet, "new", 16 * GIB, &settings()) else {
            panic!()
        };
        assert_eq!(
            (p.node, p.evict.as_slice()),
            (2, ["stale".to_string()].as_slice())
        );
        fleet[2].models[0].loaded_ms = 1000;
        fleet[1].models[0].loaded_ms = 1000;
        assert_eq!(
            route(&fleet, "new", 16 * GIB, &settings()),
            Route::Wait,
            "too young"
        );
        assert_eq!(
            route(&fleet, "huge", 30 * GIB, &settings()),
            Route::Never {
                largest_budget: 24 * GIB
            }
        );
    }

    #[test]
    fn a_model_used_within_the_last_second_is_not_idle_yet() {
        let mut fleet = [node("a", 24, &[("just-used", 20, 0, 0)], &[])];
        fleet[0].models[0].idle_ms = MIN_IDLE_MS - 1;
        assert_eq!(route(&fleet, "new", 16 * GIB, &settings()), Route::Wait);
        fleet[0].models[0].idle_ms = MIN_IDLE_MS;
        assert!(matches!(
            route(&fleet, "new", 16 * GIB, &settings()),
            Route::Place(_)
        ));
    }
}
