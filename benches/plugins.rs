//! Per-decision cost of a WebAssembly policy plugin against the built-in native policy, in one
//! run, with 8 and with 1,000 candidates: placement (the pinned-favourites example, a
//! `porten:policy@0.2.0` plugin, against least-recently-used), eviction (the GDSF example, 0.2.0,
//! and the C largest-first example, still 0.1.0, against least-recently-used), the boundary
//! alone (a plugin of each version that ignores its input), and the hub's fleet placement (the
//! coding-on-gpus example against the built-in `route`). Each decision is timed alone, over many
//! calls; the p50 and p99 are printed with the plugin's overhead. Targets: plugin p50 <= 5 us
//! with 8 candidates and <= 100 us with 1,000.
//!
//! `cargo bench --bench plugins` (builds the plugins with `scripts/build-plugins.sh`).
//! `PLUGIN_BENCH_CALLS` (default 20000) sets the calls per case.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use porten::plugin_check::{eviction_request, fleet_facts, placement_request};
use porten_plugins::{Limits, PluginEngine, WasmEvictionPolicy, WasmPlacementPolicy};
use porten_proxy::residency::{LeastRecentlyUsed, PlacementPolicy};
use porten_storage::EvictionPolicy;

fn main() {
    let calls: usize = std::env::var("PLUGIN_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/build-plugins.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plugins = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let engine = PluginEngine::new(Limits::default(), None).unwrap();
    let placement =
        WasmPlacementPolicy::load(&engine, &plugins.join("pinned_favourites.wasm")).unwrap();
    let eviction = WasmEvictionPolicy::load(&engine, &plugins.join("gdsf_eviction.wasm")).unwrap();
    let eviction_v1 =
        WasmEvictionPolicy::load(&engine, &plugins.join("largest_first_c.wasm")).unwrap();
    // Answer without looking at their input: the cost of the boundary alone, in each version.
    let ignoring_v1 = WasmEvictionPolicy::load(&engine, &plugins.join("bad_answer.wasm")).unwrap();
    let ignoring_v2 = WasmEvictionPolicy::load(&engine, &plugins.join("bad_index.wasm")).unwrap();
    let fleet_plugin =
        porten_plugins::WasmFleetPolicy::load(&engine, &plugins.join("coding_on_gpus.wasm"))
            .unwrap();
    println!("per decision, {calls} calls each (release build):");
    for n in [8, 1000] {
        let fleet = fleet_facts(n);
        let settings = porten_hub::PlacementSettings::default();
        let native = time(calls, || {
            matches!(
                porten_hub::route(
                    &fleet,
                    porten::plugin_check::FLEET_MODEL,
                    6 << 30,
                    &settings
                ),
                porten_hub::Route::Place(_)
            ) as usize
        });
        let plugin = time(calls, || {
            let candidates = porten_hub::policy::candidates(
                &fleet,
                porten::plugin_check::FLEET_MODEL,
                6 << 30,
                30_000,
            );
            use porten_hub::FleetPolicy;
            fleet_plugin
                .choose_node(
                    &fleet,
                    porten::plugin_check::FLEET_MODEL,
                    6 << 30,
                    &candidates,
                )
                .unwrap()
                .unwrap_or(0)
        });
        report("fleet", n, native, plugin);
    }
    for n in [8, 1000] {
        let request = placement_request(n);
        let native = time(calls, || LeastRecentlyUsed.choose_victims(&request).len());
        let plugin = time(calls, || {
            placement.try_choose_victims(&request).unwrap().len()
        });
        report("placement", n, native, plugin);
        let request = eviction_request(n);
        let native = time(calls, || {
            porten_storage::LeastRecentlyUsed.choose(&request).len()
        });
        let plugin = time(calls, || eviction.try_choose(&request).unwrap().len());
        report("eviction", n, native.clone(), plugin);
        let plugin = time(calls, || eviction_v1.try_choose(&request).unwrap().len());
        report("eviction (0.1.0, C)", n, native, plugin);
        for (version, ignoring) in [("0.1.0", &ignoring_v1), ("0.2.0", &ignoring_v2)] {
            // The 0.2.0 one answers an index it was never sent: refused, after the whole call.
            let floor = time(calls, || {
                ignoring.try_choose(&request).map_or(0, |v| v.len())
            });
            println!(
                "  {:<19} {n:>4} candidates: a {version} plugin that ignores its input: p50 {:>7.2} us",
                "eviction",
                floor[floor.len() / 2].as_secs_f64() * 1e6
            );
        }
    }
}

/// Sorted per-call times, after a warm-up.
fn time(calls: usize, mut decide: impl FnMut() -> usize) -> Vec<Duration> {
    for _ in 0..calls / 10 {
        std::hint::black_box(decide());
    }
    let mut times: Vec<Duration> = (0..calls)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(decide());
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn report(kind: &str, n: usize, native: Vec<Duration>, plugin: Vec<Duration>) {
    let q = |t: &[Duration], q: f64| t[((t.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let target = if n <= 8 { 5.0 } else { 100.0 };
    println!(
        "  {kind:<19} {n:>4} candidates: native p50 {:>7.2} us p99 {:>7.2} us | plugin p50 {:>7.2} us p99 {:>7.2} us | overhead p50 {:>7.2} us (plugin p50 target <= {target} us)",
        q(&native, 0.5),
        q(&native, 0.99),
        q(&plugin, 0.5),
        q(&plugin, 0.99),
        q(&plugin, 0.5) - q(&native, 0.5),
    );
}
