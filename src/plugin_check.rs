//! `porten plugin check FILE.wasm`: load a component, tell which world it implements
//! (placement, eviction, or the hub's fleet placement), run it through sample decisions, and
//! print its answers (checked as porten checks them) and how long each call takes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use porten_hub::FleetPolicy;
use porten_plugins::{Error, WasmEvictionPolicy, WasmFleetPolicy, WasmPlacementPolicy};
use porten_proxy::residency::{PlacementCandidate, PlacementPolicy, PlacementRequest};
use porten_storage::{EvictionCandidate, EvictionPolicy, EvictionRequest, ModelRef};

use crate::config::Config;

/// Calls per scenario for the timings.
const CALLS: usize = 200;

/// Runs the check; an unloadable component or a failing sample is an error (exit status 1).
pub fn check(config: &Config, file: &Path) -> anyhow::Result<()> {
    let engine = crate::plugins::engine(config)?;
    let placement = WasmPlacementPolicy::load(&engine, file);
    if let Ok(policy) = placement {
        println!("{}: a placement-policy component", file.display());
        return run("placement", "victims", &[3, 8, 1000], |n| {
            let request = placement_request(n);
            let answer = policy.try_choose_victims(&request);
            let verdict = answer.as_ref().map(|victims| {
                let freed: u64 = victims
                    .iter()
                    .filter_map(|v| request.candidates.iter().find(|c| &c.model == v))
                    .map(|c| c.bytes)
                    .sum();
                (victims.clone(), freed >= request.shortfall())
            });
            verdict.map_err(|f| format!("{}: {}", f.cause, f.detail))
        });
    }
    if let Ok(policy) = WasmFleetPolicy::load(&engine, file) {
        println!(
            "{}: a fleet-placement-policy component (porten hub)",
            file.display()
        );
        let fleets: Vec<(usize, Vec<porten_hub::NodeFacts>)> =
            [3, 8, 1000].iter().map(|&n| (n, fleet_facts(n))).collect();
        return run("fleet placement", "node", &[3, 8, 1000], |n| {
            let fleet = &fleets.iter().find(|(m, _)| *m == n).expect("made above").1;
            let candidates =
                porten_hub::policy::candidates(fleet, FLEET_MODEL, FLEET_ESTIMATE, 30_000);
            policy
                .choose_node(fleet, FLEET_MODEL, FLEET_ESTIMATE, &candidates)
                .map(|chosen| match chosen {
                    Some(i) => (vec![fleet[i].name.clone()], true),
                    None => (Vec::new(), true),
                })
                .map_err(|f| format!("{}: {}", f.cause, f.detail))
        });
    }
    match WasmEvictionPolicy::load(&engine, file) {
        Ok(policy) => {
            println!("{}: an eviction-policy component", file.display());
            run("eviction", "victims", &[3, 8, 1000], |n| {
                let request = eviction_request(n);
                let answer = policy.try_choose(&request);
                answer
                    .map(|victims| {
                        let valid = victims.iter().all(|v| {
                            request
                                .candidates
                                .iter()
                                .any(|c| &c.model == v && c.evictable())
                        });
                        (victims.iter().map(|v| v.to_string()).collect(), valid)
                    })
                    .map_err(|f| format!("{}: {}", f.cause, f.detail))
            })
        }
        Err(e @ Error::WrongWorld { .. }) => {
            bail!("{e}\n(and it is not a placement-policy or fleet-placement-policy component either)")
        }
        Err(e) => Err(e.into()),
    }
}

type Decision = Result<(Vec<String>, bool), String>;

/// Runs `decide` on each size; `answer` names what it answers (`victims`, `node`).
fn run(
    kind: &str,
    answer: &str,
    sizes: &[usize],
    decide: impl Fn(usize) -> Decision,
) -> anyhow::Result<()> {
    let mut failed = false;
    for &n in sizes {
        let mut times = Vec::with_capacity(CALLS);
        let mut last = None;
        for _ in 0..CALLS {
            let started = Instant::now();
            let decision = decide(n);
            times.push(started.elapsed());
            let stop = decision.is_err();
            last = Some(decision);
            if stop {
                break;
            }
        }
        times.sort();
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        match last.expect("at least one call") {
            Ok((victims, valid)) => {
                let shown: Vec<&String> = victims.iter().take(5).collect();
                println!(
                    "  {kind}, {n:>4} candidates: {} {answer} {shown:?}{} -> {}; p50 {} p99 {}",
                    victims.len(),
                    if victims.len() > 5 { " ..." } else { "" },
                    if valid {
                        "accepted"
                    } else {
                        "refused: the built-in policy would decide"
                    },
                    micros(p(0.5)),
                    micros(p(0.99)),
                );
                failed |= !valid;
            }
            Err(reason) => {
                println!(
                    "  {kind}, {n:>4} candidates: FAILED ({reason}) after {}",
                    micros(p(1.0))
                );
                failed = true;
            }
        }
    }
    if failed {
        bail!("the plugin failed or gave answers porten would refuse");
    }
    Ok(())
}

fn micros(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

/// `n` idle models of 1 GiB each, idle for 1..n minutes; a model of 2.5 GiB to place.
pub fn placement_request(n: usize) -> PlacementRequest {
    PlacementRequest {
        model: "incoming".into(),
        need: 5 << 29,
        budget: (n as u64 + 1) << 30,
        free: 1 << 30,
        candidates: (0..n)
            .map(|i| PlacementCandidate {
                model: format!("model-{i}"),
                bytes: 1 << 30,
                idle_for: Duration::from_secs(60 * (i as u64 + 1)),
                requests: (i as u64 * 7) % 13,
            })
            .collect(),
    }
}

/// `n` models in the store of 1..n GiB, every fifth pinned and every seventh loaded.
pub fn eviction_request(n: usize) -> EvictionRequest {
    let day = 86_400_000u64;
    EvictionRequest {
        bytes_needed: 3 << 30,
        candidates: (0..n)
            .map(|i| EvictionCandidate {
                model: ModelRef::parse(&format!("model-{i}")).expect("valid name"),
                size_bytes: (i as u64 + 1) << 30,
                unique_bytes: (i as u64 + 1) << 30,
                last_used_ms: 200 * day - (i as u64 % 30) * day,
                created_ms: 100 * day,
                pinned: i % 5 == 4,
                loaded: i % 7 == 6,
            })
            .collect(),
    }
}

/// The model the fleet samples place: a coding model, as the examples care.
pub const FLEET_MODEL: &str = "qwen-coder";
/// Its estimate: 6 GiB.
pub const FLEET_ESTIMATE: u64 = 6 << 30;

/// `n` nodes of 24 GiB (a quarter of them `gpu-*`, the rest `mac-*`), each with two idle
/// models of 8 GiB loaded an hour ago and idle up to ten minutes.
pub fn fleet_facts(n: usize) -> Vec<porten_hub::NodeFacts> {
    (0..n)
        .map(|i| {
            let models: Vec<porten_hub::ModelFacts> = (0..2)
                .map(|m| porten_hub::ModelFacts {
                    model: format!("model-{i}-{m}"),
                    state: porten_hub::ModelState::Loaded,
                    bytes: 8 << 30,
                    in_flight: 0,
                    queued: 0,
                    idle_ms: ((i * 7 + m * 13) % 600) as u64 * 1000 + 1000,
                    loaded_ms: 3_600_000,
                })
                .collect();
            porten_hub::NodeFacts {
                name: if i % 4 == 0 {
                    format!("gpu-{i}")
                } else {
                    format!("mac-{i}")
                },
                budget_bytes: 24 << 30,
                reserved_bytes: 16 << 30,
                models,
                store: Vec::new(),
                catalog: Vec::new(),
            }
        })
        .collect()
}
