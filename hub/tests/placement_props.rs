//! The hub's placement over a simulated fleet: random budgets, model sizes, demand, request
//! lengths and node failures. The simulation keeps its own account of every node and acts on
//! each decision as a node would. Invariants: no node is ever asked to exceed its budget, no
//! busy or too-young model is unloaded, a request for a loaded model goes to a node that has
//! it, a model refused as never fitting fits no live node, and once demand stops and idle
//! models are old enough, every demanded model that fits some live node is served.

use std::collections::BTreeMap;

use porten_hub::Strategy as Packing;
use porten_hub::{route, ModelFacts, ModelState, NodeFacts, PlacementSettings, Route};
use proptest::prelude::*;

const MIN_AGE_MS: u64 = 5_000;
const STEP_MS: u64 = 1_000;

#[derive(Debug, Clone)]
struct Loaded {
    bytes: u64,
    in_flight: u32,
    last_used: u64,
    loaded_at: u64,
}

#[derive(Debug, Clone)]
struct Node {
    budget: u64,
    alive: bool,
    loaded: BTreeMap<String, Loaded>,
    store: Vec<String>,
}

#[derive(Debug, Clone)]
enum Op {
    Demand { model: usize, hold_steps: u64 },
    Fail { node: usize },
    Idle,
}

fn op(models: usize, nodes: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..models, 1..6u64).prop_map(|(model, hold_steps)| Op::Demand { model, hold_steps }),
        1 => (0..nodes).prop_map(|node| Op::Fail { node }),
        2 => Just(Op::Idle),
    ]
}

struct Sim {
    nodes: Vec<Node>,
    sizes: Vec<u64>,
    now: u64,
    /// (node, model, steps left)
    requests: Vec<(usize, String, u64)>,
    settings: PlacementSettings,
}

impl Sim {
    fn facts(&self) -> (Vec<NodeFacts>, Vec<usize>) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        let facts = live
            .iter()
            .map(|&i| {
                let n = &self.nodes[i];
                NodeFacts {
                    name: format!("node{i}"),
                    budget_bytes: n.budget,
                    reserved_bytes: n.loaded.values().map(|m| m.bytes).sum(),
                    models: n
                        .loaded
                        .iter()
                        .map(|(id, m)| ModelFacts {
                            model: id.clone(),
                            state: ModelState::Loaded,
                            bytes: m.bytes,
                            in_flight: m.in_flight,
                            queued: 0,
                            idle_ms: if m.in_flight > 0 {
                                0
                            } else {
                                self.now - m.last_used
                            },
                            loaded_ms: self.now - m.loaded_at,
                        })
                        .collect(),
                    store: n.store.clone(),
                    catalog: Vec::new(),
                }
            })
            .collect();
        (facts, live)
    }

    fn step(&mut self) {
        self.now += STEP_MS;
        let now = self.now;
        for (node, model, left) in &mut self.requests {
            *left -= 1;
            if *left == 0 {
                if let Some(m) = self.nodes[*node].loaded.get_mut(model.as_str()) {
                    m.in_flight -= 1;
                    m.last_used = now;
                }
            }
        }
        self.requests.retain(|r| r.2 > 0);
    }

    /// Routes one request and acts on the answer; `Ok(true)` when it is being served.
    fn demand(&mut self, model: usize, hold_steps: u64) -> Result<bool, TestCaseError> {
        let id = format!("m{model}");
        let size = self.sizes[model];
        let (facts, live) = self.facts();
        let decision = route(&facts, &id, size, &self.settings);
        let node = match decision {
            Route::Serve { node } | Route::Queue { node } => {
                prop_assert!(
                    facts[node].model(&id).is_some(),
                    "routed to a node without it"
                );
                live[node]
            }
            Route::Place(p) => {
                let n = live[p.node];
                let node = &mut self.nodes[n];
                prop_assert_eq!(p.pull, !node.store.contains(&id));
                for victim in &p.evict {
                    let m = node.loaded.get(victim).expect("a victim the node holds");
                    prop_assert_eq!(m.in_flight, 0, "evicted a busy model: {}", victim);
                    prop_assert!(
                        self.now - m.loaded_at >= MIN_AGE_MS,
                        "evicted a young model"
                    );
                    node.loaded.remove(victim);
                }
                let reserved: u64 = node.loaded.values().map(|m| m.bytes).sum();
                prop_assert!(
                    reserved + size <= node.budget,
                    "asked node{} to hold {} of {}",
                    n,
                    reserved + size,
                    node.budget
                );
                prop_assert!(!node.loaded.contains_key(&id));
                node.loaded.insert(
                    id.clone(),
                    Loaded {
                        bytes: size,
                        in_flight: 0,
                        last_used: self.now,
                        loaded_at: self.now,
                    },
                );
                if !node.store.contains(&id) {
                    node.store.push(id.clone());
                }
                n
            }
            Route::Wait => return Ok(false),
            Route::Never { .. } => {
                prop_assert!(
                    facts.iter().all(|n| n.budget_bytes < size),
                    "refused a model that fits"
                );
                return Ok(false);
            }
        };
        self.nodes[node].loaded.get_mut(&id).unwrap().in_flight += 1;
        self.requests.push((node, id, hold_steps));
        Ok(true)
    }
}

fn run(
    budgets: Vec<u64>,
    sizes: Vec<u64>,
    ops: Vec<Op>,
    strategy: Packing,
) -> Result<(), TestCaseError> {
    let mut sim = Sim {
        nodes: budgets
            .iter()
            .map(|&budget| Node {
                budget,
                alive: true,
                loaded: BTreeMap::new(),
                store: Vec::new(),
            })
            .collect(),
        sizes,
        now: 0,
        requests: Vec::new(),
        settings: PlacementSettings {
            strategy,
            min_age_ms: MIN_AGE_MS,
        },
    };
    let mut demanded = Vec::new();
    for op in ops {
        sim.step();
        match op {
            Op::Demand { model, hold_steps } => {
                demanded.push(model);
                sim.demand(model, hold_steps)?;
            }
            Op::Fail { node } => {
                // Keep one node alive: a fleet of none has nothing to check.
                if sim.nodes.iter().filter(|n| n.alive).count() > 1 && sim.nodes[node].alive {
                    sim.nodes[node].alive = false;
                    sim.nodes[node].loaded.clear();
                    sim.requests.retain(|r| r.0 != node);
                }
            }
            Op::Idle => {}
        }
    }
    // Demand stops: requests finish and idle models grow old enough to give way.
    while !sim.requests.is_empty() {
        sim.step();
    }
    sim.now += MIN_AGE_MS;
    for model in demanded {
        let fits = sim
            .nodes
            .iter()
            .any(|n| n.alive && n.budget >= sim.sizes[model]);
        let served = sim.demand(model, 1)?;
        prop_assert_eq!(served, fits, "m{} (size {})", model, sim.sizes[model]);
        while !sim.requests.is_empty() {
            sim.step();
        }
        sim.now += MIN_AGE_MS;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_simulated_fleet_keeps_budgets_spares_busy_models_and_serves_what_fits(
        (budgets, sizes, ops) in (2..6usize, 2..10usize).prop_flat_map(|(nodes, models)| (
            proptest::collection::vec(8..64u64, nodes),
            proptest::collection::vec(1..80u64, models),
            proptest::collection::vec(op(models, nodes), 1..80),
        )),
        bin_pack in any::<bool>(),
    ) {
        let strategy = if bin_pack { Packing::BinPack } else { Packing::Spread };
        run(budgets, sizes, ops, strategy)?;
    }
}
