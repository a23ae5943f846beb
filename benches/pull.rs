//! Pulling from a local S3-compatible server (moto, on 127.0.0.1): porten's pull (parallel range
//! requests, blake3 verification, fsync, commit into the store) against the fastest plain
//! clients that run here, on the same objects in the same run: one `object_store` GET streamed
//! to a file, and boto3's `download_file` (parallel ranged GETs through s3transfer), both
//! fsynced. porten runs twice: with its default 8 parallel ranges, and with `concurrency = 1`
//! (one streamed request). Models: SmolLM2 (94 MiB) and a 1 GiB GGUF. Rounds alternate the clients;
//! medians are printed with the ratio (baseline time / porten time, higher is better).
//!
//! `cargo bench --bench pull` (after `scripts/setup-test-deps.sh`, which installs moto and
//! boto3 into .venv). `PULL_BENCH_ROUNDS` (default 3) and `PULL_BENCH_BIG_MIB` (default 1024).
//! `PULL_BENCH_S3S_FS=/path/to/s3s-fs` runs the same against s3s-fs (a Rust server that keeps
//! objects in files), after moto: `cargo install --locked s3s-fs@0.14.1 --features binary`.
//! `PULL_BENCH_CONCURRENCY` and `PULL_BENCH_PART_MIB` change porten's ranged setting;
//! `PULL_BENCH_SKIP_MOTO` skips moto.

mod common;
#[path = "../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../tests/support/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../tests/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use common::{env_usize, median};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use porten_storage::{
    ImportMode, ImportOptions, Mirror, MirrorSettings, ModelRef, NoProgress, Store, StoreConfig,
};

const BUCKET: &str = "bench";

fn main() {
    let rounds: usize = env_usize("PULL_BENCH_ROUNDS", 3);
    let big_mib: usize = env_usize("PULL_BENCH_BIG_MIB", 1024);
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.gguf");
    fixtures::big_gguf(&big, big_mib, 11);
    let models = [("smollm2", common::smollm2()), ("big", big)];
    if std::env::var("PULL_BENCH_SKIP_MOTO").is_err() {
        let moto = s3::Moto::start();
        moto.create_bucket(BUCKET);
        run("moto", moto.addr, &models, rounds, work.path());
    }
    if let Ok(binary) = std::env::var("PULL_BENCH_S3S_FS") {
        let root = work.path().join("s3s-root");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "test", "--secret-key", "test"])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        while std::net::TcpStream::connect(addr).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        run("s3s-fs", addr, &models, rounds, work.path());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Pushes each model to the server at `addr`, then times the clients pulling it.
fn run(
    server: &str,
    addr: std::net::SocketAddr,
    models: &[(&str, PathBuf)],
    rounds: usize,
    work: &Path,
) {
    let env = s3::client_env(addr);
    for (key, value) in &env {
        // The benchmark's own threads are idle here; the mirror's builder reads these.
        std::env::set_var(key, value);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let source_root = work.join(format!("source-{server}"));
    let source = Arc::new(Store::open(&source_root, StoreConfig::default()).unwrap());
    let url = format!("s3://{BUCKET}/models");
    let defaults = MirrorSettings::new(&url);
    let mirror = Mirror::open(MirrorSettings {
        concurrency: env_usize("PULL_BENCH_CONCURRENCY", defaults.concurrency),
        part_size: (env_usize("PULL_BENCH_PART_MIB", (defaults.part_size >> 20) as usize) as u64)
            << 20,
        ..defaults
    })
    .unwrap();
    let one_stream = Mirror::open(MirrorSettings {
        concurrency: 1,
        ..MirrorSettings::new(&url)
    })
    .unwrap();
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    println!(
        "pull from {server} on 127.0.0.1, {rounds} rounds; porten's ranged setting: {} ranges of {} MiB",
        mirror.settings().concurrency,
        mirror.settings().part_size >> 20
    );
    for (name, path) in models {
        let model = ModelRef::parse(name).unwrap();
        let options = ImportOptions {
            model: model.clone(),
            mode: ImportMode::Link,
            made_from: None,
        };
        let manifest = source.import(path, &options, &NoProgress).unwrap().manifest;
        runtime
            .block_on(mirror.push(&source, &model, &NoProgress))
            .unwrap();
        let file = &manifest.files[0];
        let key = format!("models/porten-v1/blobs/{}", file.blake3.hex());
        let (mut porten, mut streamed, mut plain, mut boto) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let dir = work.join(format!("round-{server}-{name}-{round}"));
            porten.push(time_porten(&runtime, &mirror, &model, &dir.join("store")));
            streamed.push(time_porten(
                &runtime,
                &one_stream,
                &model,
                &dir.join("store1"),
            ));
            plain.push(time_object_store_get(
                &runtime,
                addr,
                &key,
                &dir.join("plain"),
            ));
            boto.push(time_boto3(&python, &env, &key, &dir.join("boto")));
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let mib = file.size as f64 / (1 << 20) as f64;
        let (porten, streamed) = (median(porten), median(streamed));
        let (plain, boto) = (median(plain), median(boto));
        let fastest = plain.min(boto);
        println!("{name} ({mib:.0} MiB, one blob):");
        for (client, secs) in [
            ("porten pull, ranges", porten),
            ("porten pull, 1 stream", streamed),
            ("object_store GET", plain),
            ("boto3 download_file", boto),
        ] {
            println!(
                "  {client:<24} {:>8.3} s {:>8.1} MiB/s",
                secs.as_secs_f64(),
                mib / secs.as_secs_f64()
            );
        }
        for (setting, secs) in [("ranges", porten), ("1 stream", streamed)] {
            println!(
                "  ratio, porten {setting} vs the fastest plain client: {:.3}x (vs object_store \
                 {:.3}x, vs boto3 {:.3}x)",
                fastest.as_secs_f64() / secs.as_secs_f64(),
                plain.as_secs_f64() / secs.as_secs_f64(),
                boto.as_secs_f64() / secs.as_secs_f64(),
            );
        }
    }
}

fn time_porten(
    runtime: &tokio::runtime::Runtime,
    mirror: &Mirror,
    model: &ModelRef,
    root: &Path,
) -> Duration {
    let store = Arc::new(Store::open(root, StoreConfig::default()).unwrap());
    let started = Instant::now();
    let report = runtime
        .block_on(mirror.pull(&store, model, &NoProgress))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.blobs_fetched, 1);
    took
}

fn time_object_store_get(
    runtime: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    key: &str,
    path: &Path,
) -> Duration {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let client = s3::client(addr, BUCKET);
    let started = Instant::now();
    runtime.block_on(async {
        let key = object_store::path::Path::from(key);
        let mut stream = client.get(&key).await.unwrap().into_stream();
        let mut file = std::fs::File::create(path).unwrap();
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.unwrap()).unwrap();
        }
        file.sync_all().unwrap();
    });
    started.elapsed()
}

/// boto3 in its own process; the time is taken inside it, around the download alone.
fn time_boto3(python: &Path, env: &[(String, String)], key: &str, path: &Path) -> Duration {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let script = r#"
import os, sys, time, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
started = time.perf_counter()
s3.download_file(sys.argv[1], sys.argv[2], sys.argv[3])
with open(sys.argv[3], "rb") as f:
    os.fsync(f.fileno())
print(time.perf_counter() - started)
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, BUCKET, key, path.to_str().unwrap()])
        .envs(env.iter().cloned())
        .output()
        .expect("run boto3 from .venv");
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(secs)
}
