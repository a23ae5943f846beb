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
        println!(
            "{}: a placement-policy component (porten:policy@{})",
            file.display(),
            policy.version()
        );
        let requests = samples(placement_request);
        return run("placement", "victims", |n| {
            let request = &requests
                .iter()
                .find(|(m, _)| *m == n)
                .expect("made above")
                .1;
            let (took, answer) = timed(|| policy.try_choose_victims(request));
            let verdict = answer.map(|victims| {
                let freed: u64 = victims
                    .iter()
                    .filter_map(|v| request.candidates.iter().find(|c| &c.model == v))
                    .map(|c| c.bytes)
                    .sum();
                let enough = freed >= request.shortfall();
                (victims, enough)
            });
            (
                took,
                verdict.map_err(|f| format!("{}: {}", f.cause, f.detail)),
            )
        });
    }
    if let Ok(policy) = WasmFleetPolicy::load(&engine, file) {
        println!(
            "{}: a fleet-placement-policy component (porten:policy@0.2.0, porten hub)",
            file.display()
        );
        let fleets = samples(fleet_facts);
        return run("fleet placement", "node", |n| {
            let fleet = &fleets.iter().find(|(m, _)| *m == n).expect("made above").1;
            let (took, answer) = timed(|| {
                let candidates =
                    porten_hub::policy::candidates(fleet, FLEET_MODEL, FLEET_ESTIMATE, 30_000);
                policy.choose_node(fleet, FLEET_MODEL, FLEET_ESTIMATE, &candidates)
            });
            let verdict = answer.map(|chosen| match chosen {
                Some(i) => (vec![fleet[i].name.clone()], true),
                None => (Vec::new(), true),
            });
            (
                took,
                verdict.map_err(|f| format!("{}: {}", f.cause, f.detail)),
            )
        });
    }
    match WasmEvictionPolicy::load(&engine, file) {
        Ok(policy) => {
            println!(
                "{}: an eviction-policy component (porten:policy@{})",
                file.display(),
                policy.version()
            );
            let requests = samples(eviction_request);
            run("eviction", "victims", |n| {
                let request = &requests
                    .iter()
                    .find(|(m, _)| *m == n)
                    .expect("made above")
                    .1;
                let (took, answer) = timed(|| policy.try_choose(request));
                let verdict = answer.map(|victims| {
                    let evictable: std::collections::HashSet<&ModelRef> = request
                        .candidates
                        .iter()
                        .filter(|c| c.evictable())
                        .map(|c| &c.model)
                        .collect();
                    let valid = victims.iter().all(|v| evictable.contains(v));
                    (victims.iter().map(|v| v.to_string()).collect(), valid)
                });
                (
                    took,
                    verdict.map_err(|f| format!("{}: {}", f.cause, f.detail)),
                )
            })
        }
        Err(e @ Error::WrongWorld { .. }) => {
            bail!("{e}\n(and it is not a placement-policy or fleet-placement-policy component either)")
        }
        Err(e) => Err(e.into()),
    }
}

/// The sample sizes: 3, 8 and 1,000 candidates.
const SIZES: [usize; 3] = [3, 8, 1000];

type Decision = Result<(Vec<String>, bool), String>;

/// One sample decision per size, made before any timing.
fn samples<T>(make: impl Fn(usize) -> T) -> Vec<(usize, T)> {
    SIZES.iter().map(|&n| (n, make(n))).collect()
}

/// How long `call` took, and its answer.
fn timed<T>(call: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let answer = call();
    (started.elapsed(), answer)
}

/// Runs `decide` on each size: it times the plugin's call alone and checks the answer as
/// porten would. `answer` names what it answers (`victims`, `node`).
fn run(
    kind: &str,
    answer: &str,
    decide: impl Fn(usize) -> (Duration, Decision),
) -> anyhow::Result<()> {
    let mut failed = false;
    for n in SIZES {
        let mut times = Vec::with_capacity(CALLS);
        let mut last = None;
        for _ in 0..CALLS {
            let (took, decision) = decide(n);
            times.push(took);
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
