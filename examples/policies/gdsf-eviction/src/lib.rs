//! Cost-aware eviction in the manner of GreedyDual-Size-Frequency: each model's priority is
//!
//! ```text
//! H = clock + frequency x cost / size
//! ```
//!
//! and the lowest priority goes first. `cost` is what evicting it costs later: fetching its
//! bytes again plus a fixed start-up cost per model (a 30-second pull at 100 MB/s, say), so
//! per byte a small model is dearer to lose than a large one. `frequency` is how long the model
//! has stayed in use (days from its import to its last use, plus one), since the store keeps no
//! hit counts. The clock ages every model alike by the time since its last use, so a model
//! nobody has touched for long loses its standing whatever its size.
//!
//! Against least-recently-used, this evicts a large model before an older small one that has
//! been in use for a while. Pinned and loaded models are never chosen.
//!
//! A `porten:policy@0.2.0` plugin: it needs no names at all (ties go by index), so
//! `set-models` keeps nothing.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "eviction-policy" });

use exports::porten::policy::eviction::{Candidates, Guest, Request};

/// A re-fetch's fixed cost, in bytes of transfer.
const START_UP_BYTES: f64 = 3.0e9;
const DAY_MS: f64 = 86_400_000.0;
/// How much one day without use lowers a model's standing.
const AGEING_PER_DAY: f64 = 1.0;

struct Gdsf;

/// The priority of the candidate at position `at`.
fn priority(c: &Candidates, at: usize, now_ms: u64) -> f64 {
    let size = c.size_bytes[at].max(1) as f64;
    let cost = START_UP_BYTES + c.unique_bytes[at] as f64;
    let frequency = 1.0 + c.last_used_ms[at].saturating_sub(c.created_ms[at]) as f64 / DAY_MS;
    let clock = -(now_ms.saturating_sub(c.last_used_ms[at]) as f64 / DAY_MS) * AGEING_PER_DAY;
    clock + frequency * cost / size
}

impl Guest for Gdsf {
    fn set_models(_names: Vec<String>) {}

    fn choose_victims(request: Request) -> Vec<u32> {
        let c = &request.candidates;
        let mut order: Vec<(f64, usize)> = (0..c.model.len())
            .filter(|&at| !c.pinned[at] && !c.loaded[at])
            .map(|at| (priority(c, at, request.now_ms), at))
            .collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(c.model[a.1].cmp(&c.model[b.1])));
        // The store stops once enough is freed: the victims it needs, and a few to spare.
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for (_, at) in order {
            if freed >= request.bytes_needed.saturating_mul(2) {
                break;
            }
            freed += c.unique_bytes[at];
            victims.push(c.model[at]);
        }
        victims
    }
}

export!(Gdsf);
