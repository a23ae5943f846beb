//! The hub's placement on a simulated fleet of 1,000 nodes and 10,000 models with
//! Zipf-distributed demand, against a cluster-wide least-recently-used baseline (ModelMesh's
//! policy: most free node, else evict the fleet's LRU idle models, no minimum age, no store
//! preference) in the same run. Prints each policy's decision time (p50, p99), the share of
//! requests served by an already-loaded copy, loads and pulls per simulated hour.
//!
//! `cargo bench -p porten-hub --bench fleet_simulation`

use std::time::Instant;

use porten_hub::{route, ModelFacts, ModelState, NodeFacts, Placement, PlacementSettings, Route};

const NODES: usize = 1_000;
const MODELS: usize = 10_000;
const REQUESTS: usize = 200_000;
/// Requests per simulated second, and how long each holds its model.
const RATE: f64 = 100.0;
const HOLD_MS: u64 = 5_000;
const GIB: u64 = 1 << 30;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Policy = fn(&[NodeFacts], &str, u64) -> Route;

fn ours(fleet: &[NodeFacts], model: &str, size: u64) -> Route {
    route(fleet, model, size, &PlacementSettings::default())
}

/// ModelMesh's cluster-wide LRU: serve a loaded copy, else the node with the most free memory,
/// else unload the fleet's least recently used idle models, in that order, until one node has
/// room.
fn cluster_lru(fleet: &[NodeFacts], model: &str, size: u64) -> Route {
    if let Some(node) = fleet.iter().position(|n| n.model(model).is_some()) {
        return Route::Serve { node };
    }
    let roomiest = (0..fleet.len())
        .max_by_key(|&i| fleet[i].free_bytes())
        .unwrap();
    if fleet[roomiest].free_bytes() >= size {
        return place(roomiest, Vec::new(), fleet, model);
    }
    let mut idle: Vec<(u64, usize, &ModelFacts)> = fleet
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.models
                .iter()
                .filter(|m| !m.busy())
                .map(move |m| (m.idle_ms, i, m))
        })
        .collect();
    idle.sort_by_key(|(idle_ms, _, _)| std::cmp::Reverse(*idle_ms));
    let mut freed = vec![0u64; fleet.len()];
    let mut victims: Vec<Vec<String>> = vec![Vec::new(); fleet.len()];
    for (_, i, m) in idle {
        if fleet[i].budget_bytes < size {
            continue;
        }
        freed[i] += m.bytes;
        victims[i].push(m.model.clone());
        if fleet[i].free_bytes() + freed[i] >= size {
            return place(i, std::mem::take(&mut victims[i]), fleet, model);
        }
    }
    Route::Wait
}

fn place(node: usize, evict: Vec<String>, fleet: &[NodeFacts], model: &str) -> Route {
    Route::Place(Placement {
        node,
        evict,
        pull: !fleet[node].has_weights(model),
        reason: String::new(),
    })
}

struct Outcome {
    decisions_us: Vec<f64>,
    hits: usize,
    loads: usize,
    pulls: usize,
    waits: usize,
    simulated_ms: u64,
}

fn simulate(policy: Policy, sizes: &[u64], budgets: &[u64], cdf: &[f64]) -> Outcome {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut fleet: Vec<NodeFacts> = budgets
        .iter()
        .enumerate()
        .map(|(i, &b)| NodeFacts {
            name: format!("node{i:04}"),
            budget_bytes: b,
            reserved_bytes: 0,
            models: Vec::new(),
            store: Vec::new(),
            catalog: Vec::new(),
        })
        .collect();
    // Absolute times of each (node, model): last use and load, and when requests end.
    let mut ends: Vec<(u64, usize, String)> = Vec::new();
    let mut out = Outcome {
        decisions_us: Vec::new(),
        hits: 0,
        loads: 0,
        pulls: 0,
        waits: 0,
        simulated_ms: 0,
    };
    let mut now = 0u64;
    let mut last_used: std::collections::HashMap<(usize, String), (u64, u64)> = Default::default();
    for _ in 0..REQUESTS {
        now += (-rng.unit().max(1e-12).ln() / RATE * 1000.0) as u64;
        // Requests that ended free their models.
        ends.retain(|(end, node, model)| {
            if *end > now {
                return true;
            }
            if let Some(m) = fleet[*node].models.iter_mut().find(|m| &m.model == model) {
                m.in_flight -= 1;
            }
            last_used
                .entry((*node, model.clone()))
                .and_modify(|t| t.0 = *end);
            false
        });
        for (i, node) in fleet.iter_mut().enumerate() {
            for m in &mut node.models {
                let (used, loaded) = last_used[&(i, m.model.clone())];
                m.idle_ms = if m.in_flight > 0 { 0 } else { now - used };
                m.loaded_ms = now - loaded;
            }
        }
        let u = rng.unit();
        let model = cdf.partition_point(|c| *c < u).min(MODELS - 1);
        let id = format!("m{model}");
        let started = Instant::now();
        let decision = policy(&fleet, &id, sizes[model]);
        out.decisions_us.push(started.elapsed().as_secs_f64() * 1e6);
        let node = match decision {
            Route::Serve { node } | Route::Queue { node } => {
                out.hits += 1;
                node
            }
            Route::Place(p) => {
                let n = &mut fleet[p.node];
                for victim in &p.evict {
                    let gone = n.models.iter().position(|m| &m.model == victim).unwrap();
                    n.reserved_bytes -= n.models.remove(gone).bytes;
                }
                n.reserved_bytes += sizes[model];
                n.models.push(ModelFacts {
                    model: id.clone(),
                    state: ModelState::Loaded,
                    bytes: sizes[model],
                    in_flight: 0,
                    queued: 0,
                    idle_ms: 0,
                    loaded_ms: 0,
                });
                last_used.insert((p.node, id.clone()), (now, now));
                out.loads += 1;
                if p.pull {
                    out.pulls += 1;
                    n.store.push(id.clone());
                }
                p.node
            }
            Route::Wait | Route::Never { .. } => {
                out.waits += 1;
                continue;
            }
        };
        let m = fleet[node]
            .models
            .iter_mut()
            .find(|m| m.model == id)
            .unwrap();
        m.in_flight += 1;
        ends.push((now + HOLD_MS, node, id));
    }
    out.simulated_ms = now;
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let mut rng = Rng(42);
    // Budgets of a mixed fleet (24, 48, 80 GB GPUs) and models of 1-40 GiB, log-uniform.
    let budgets: Vec<u64> = (0..NODES).map(|i| [24, 48, 80][i % 3] * GIB).collect();
    let sizes: Vec<u64> = (0..MODELS)
        .map(|_| ((40f64).powf(rng.unit()) * GIB as f64) as u64)
        .collect();
    let weights: Vec<f64> = (1..=MODELS).map(|k| 1.0 / k as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let cdf: Vec<f64> = weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect();
    println!(
        "fleet simulation: {NODES} nodes (24/48/80 GiB), {MODELS} models (1-40 GiB), Zipf(1) \
         demand, {REQUESTS} requests at {RATE}/s holding {HOLD_MS} ms"
    );
    for (name, policy) in [
        ("porten", ours as Policy),
        ("cluster-wide LRU", cluster_lru as Policy),
    ] {
        let mut out = simulate(policy, &sizes, &budgets, &cdf);
        out.decisions_us.sort_by(f64::total_cmp);
        let hours = out.simulated_ms as f64 / 3.6e6;
        println!(
            "{name:>17}: decision p50 {:.1} us p99 {:.1} us; served by a loaded copy {:.1}%; \
             {:.0} loads/h, {:.0} pulls/h; {} waited",
            percentile(&out.decisions_us, 0.5),
            percentile(&out.decisions_us, 0.99),
            100.0 * out.hits as f64 / REQUESTS as f64,
            out.loads as f64 / hours,
            out.pulls as f64 / hours,
            out.waits
        );
    }
}
