//! What the hub adds to a request: a one-token chat on a tiny model sent to a node directly,
//! and the same through `porten hub` in front of it, rounds interleaved in one run, at 1 and
//! 16 keep-alive connections. Prints the added p50 and p99 latency and both request rates.
//! Target: at most 0.1 ms added at p50.
//!
//! Twice: first with node, hub and client sharing both cores, as they fall; then with the
//! node pinned to core 0 and the hub and the client to core 1 (in both the direct and the hub
//! rounds), the nearest this one machine comes to a hub on a machine of its own, where the
//! hub's work does not take the node's CPU. Each row also gives the CPU time the hub and the
//! node spend per request (from /proc), which is what a hub on a machine of its own would
//! take from nobody.
//!
//! `cargo bench --bench hub_overhead` (BENCH_ROUNDS, BENCH_SECS to change the run).

mod common;
#[allow(dead_code)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use common::load::{interleaved, measure};
use common::{cpu_secs, env_usize, pin, Porten};

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 6);
    let secs = env_usize("BENCH_SECS", 3) as f64;
    let work = tempfile::tempdir().unwrap();
    let tiny = work.path().join("tiny");
    fixtures::write_tiny_chat_model(&tiny);
    let hub_home = work.path().join("hub");
    std::fs::create_dir_all(&hub_home).unwrap();
    let hub = Porten::launch(
        &hub_home,
        &["hub", "--listen", "127.0.0.1:0", "--no-metrics"],
        &[],
        "porten hub listening on http://",
    );
    let node_home = work.path().join("node");
    std::env::set_var("PORTEN_HUB", format!("http://{}", hub.addr));
    std::env::set_var("PORTEN_NODE_NAME", "bench");
    let model = format!("tiny={}", tiny.display());
    let node = Porten::start(
        &node_home,
        &["--model".as_ref(), model.as_ref(), "--no-metrics".as_ref()],
    );
    std::env::remove_var("PORTEN_HUB");
    // Until the node has reported, the hub has nowhere to send the model.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !common::bodiless(hub.addr, "GET", "/hub/status").contains("\"bench\"") {
        assert!(Instant::now() < deadline, "the node never reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    for addr in [node.addr, hub.addr] {
        measure(addr, 4, 1.0);
    }
    println!("one-token chat on a tiny model, {rounds} interleaved rounds of {secs} s");
    for layout in ["shared cores", "node on core 0; hub and client on core 1"] {
        if layout != "shared cores" {
            pin(node.pid(), "0");
            pin(hub.pid(), "1");
            pin(std::process::id(), "1");
        }
        println!("\n{layout}:");
        println!("| connections | direct p50 | hub p50 | added p50 | direct p99 | hub p99 | added p99 | direct req/s | hub req/s | hub CPU / request | node CPU / request |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for clients in [1, 16] {
            let (hub_cpu, node_cpu) = (cpu_secs(hub.pid()), cpu_secs(node.pid()));
            let mut requests = [0usize; 2];
            let (through, direct) = interleaved(rounds, |via_hub| {
                let (rate, latencies) =
                    measure(if via_hub { hub.addr } else { node.addr }, clients, secs);
                requests[usize::from(via_hub)] += latencies.len();
                (rate, latencies)
            });
            let per_request = |cpu: f64, n: usize| cpu / n.max(1) as f64 * 1e6;
            let hub_us = per_request(cpu_secs(hub.pid()) - hub_cpu, requests[1]);
            let node_us = per_request(cpu_secs(node.pid()) - node_cpu, requests[0] + requests[1]);
            println!(
                "| {clients} | {:.3} ms | {:.3} ms | {:+.3} ms | {:.3} ms | {:.3} ms | {:+.3} ms | {:.0} | {:.0} | {hub_us:.0} us | {node_us:.0} us |",
                direct.p50_ms,
                through.p50_ms,
                through.p50_ms - direct.p50_ms,
                direct.p99_ms,
                through.p99_ms,
                through.p99_ms - direct.p99_ms,
                direct.rate,
                through.rate,
            );
        }
    }
}
