//! Pulling a GGUF file from a Hugging Face Hub-protocol server (olah, offline, on 127.0.0.1):
//! porten's Hub pull (listing, sha256 on the way, fsync, import into the store with blake3)
//! against `huggingface_hub`'s own `hf_hub_download` from the same server and file, in the
//! same run, rounds alternating. Each side starts from an empty store or cache every round and
//! is timed inside its own process (no interpreter start-up counted). Prints the medians and
//! the ratio (huggingface_hub's time / porten's, higher is better; target >= 0.9).
//!
//! `cargo bench --bench hub_pull` (after `scripts/setup-test-deps.sh`, which installs olah and
//! its huggingface_hub into .venv-olah). `HUB_BENCH_ROUNDS` (default 3), `HUB_BENCH_MIB`
//! (default 512).

mod common;
#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../tests/support/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../tests/support/hub.rs"]
#[allow(dead_code)]
mod hub;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::{env_usize, median};
use porten_storage::hub::{Hub, HubRef, HubSettings};
use porten_storage::{NoProgress, Store, StoreConfig};

const REPO: &str = "bench/big-GGUF";
const FILE: &str = "big-Q8_0.gguf";

/// `hf_hub_download` timed in its own process; prints the seconds.
const HF_HUB_DOWNLOAD: &str = "
import sys, time
from huggingface_hub import hf_hub_download
endpoint, repo, file, cache = sys.argv[1:5]
start = time.perf_counter()
hf_hub_download(repo, file, cache_dir=cache, endpoint=endpoint)
print(time.perf_counter() - start)
";

fn main() {
    let rounds = env_usize("HUB_BENCH_ROUNDS", 3);
    let mib = env_usize("HUB_BENCH_MIB", 512);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.gguf");
    fixtures::big_gguf(&big, mib, 5);
    let olah = hub::Olah::start(work.path());
    olah.repo(REPO, &[(FILE, &big)], None);
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-olah/bin/python");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = HubSettings {
        endpoint: olah.endpoint.clone(),
        token: None,
        cache_dir: None,
    };
    let client = Hub::open(settings).unwrap();
    let reference = HubRef::parse(&format!("hf://{REPO}:Q8_0"))
        .unwrap()
        .unwrap();
    let (mut porten, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = work.path().join(format!("round-{round}"));
        let time_porten = || {
            let store = Arc::new(Store::open(dir.join("store"), StoreConfig::default()).unwrap());
            let start = Instant::now();
            rt.block_on(client.pull(&store, &reference, &NoProgress))
                .unwrap();
            start.elapsed().as_secs_f64()
        };
        let time_hf = || {
            let out = Command::new(&python)
                .args(["-c", HF_HUB_DOWNLOAD, &olah.endpoint, REPO, FILE])
                .arg(dir.join("hf-cache"))
                .env("HF_HUB_DISABLE_TELEMETRY", "1")
                .env("HF_HUB_ENABLE_HF_TRANSFER", "0")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .unwrap()
        };
        // Alternate who goes first, so neither always meets a cold page cache.
        if round % 2 == 0 {
            porten.push(time_porten());
            baseline.push(time_hf());
        } else {
            baseline.push(time_hf());
            porten.push(time_porten());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (p, b) = (median(porten.clone()), median(baseline.clone()));
    let rate = |secs: f64| mib as f64 / secs;
    println!("pull of a {mib} MiB GGUF from olah on 127.0.0.1, {rounds} rounds, medians:");
    println!(
        "  porten pull hf://      : {p:6.2} s ({:7.1} MiB/s)  {porten:.2?}",
        rate(p)
    );
    println!(
        "  huggingface_hub        : {b:6.2} s ({:7.1} MiB/s)  {baseline:.2?}",
        rate(b)
    );
    println!(
        "  ratio (hf time / porten time): {:.2}x  (target >= 0.9x)",
        b / p
    );
}
