//! Swap time: porten unloading one model and loading SmolLM2 (from the page cache) to make
//! room for it, against mistral.rs loading the same file directly in-process, interleaved in
//! one run. Prints both, the ratio (target <= 1.1x) and the effective GB/s.
//!
//! `cargo bench --bench swap` (or `bash scripts/bench.sh`, which runs both benchmarks). Env: `BENCH_RUNS` (default 5),
//! `PORTEN_SMOLLM2_GGUF` (default: fetched).

mod common;

use common::{bodiless, smollm2, Porten};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mistralrs::{GgufModelBuilder, TokenSource};

/// mistral.rs loading the file the way porten does (same builder settings), then dropping it.
/// With `fresh_heap`, the heap is first given back to the OS, as porten does after an unload,
/// so the load pays for faulting fresh pages in; without, it reuses the pages the previous
/// load's model freed.
async fn direct_load(file: &Path, fresh_heap: bool) -> Duration {
    if fresh_heap {
        porten_proxy::residency::memory::return_freed_memory();
    }
    let started = Instant::now();
    let model = GgufModelBuilder::new(
        file.parent().unwrap().display().to_string(),
        vec![file.file_name().unwrap().to_string_lossy().to_string()],
    )
    .with_token_source(TokenSource::None)
    .with_max_num_seqs(4)
    .with_prefix_cache_n(None)
    .build()
    .await
    .unwrap();
    let took = started.elapsed();
    drop(model);
    took
}

fn post(addr: SocketAddr, path: &str) -> String {
    bodiless(addr, "POST", path)
}

/// porten serving two SmolLM2 copies with a budget that holds only one.
fn start_porten(dir: &Path, file: &Path) -> Porten {
    let copy = dir.join("a");
    std::fs::create_dir_all(&copy).unwrap();
    let copy_file = copy.join("model.gguf");
    std::fs::hard_link(file, &copy_file)
        .or_else(|_| std::fs::copy(file, &copy_file).map(drop))
        .unwrap();
    let config = dir.join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[memory]\nbudget_mb = 1500\nkeep_alive = -1\n\
             [[models]]\nid = \"a\"\npath = \"{}\"\n\
             [[models]]\nid = \"smollm2\"\npath = \"{}\"\n",
            copy_file.display(),
            file.display()
        ),
    )
    .unwrap();
    Porten::start(dir, &["--config".as_ref(), config.as_os_str()])
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let file = smollm2();
    let bytes = std::fs::metadata(&file).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let server = start_porten(dir.path(), &file);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Warm the page cache and both code paths once.
    runtime.block_on(direct_load(&file, false));
    assert!(post(server.addr, "/admin/models/smollm2/load").contains("200 OK"));
    let (mut direct, mut fresh, mut swap) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        direct.push(runtime.block_on(direct_load(&file, false)));
        fresh.push(runtime.block_on(direct_load(&file, true)));
        // Let the dropped model's engine thread finish freeing before porten's turn.
        std::thread::sleep(Duration::from_millis(300));
        // `a` in, which evicts smollm2; then time smollm2 back in, which evicts `a`.
        let a = post(server.addr, "/admin/models/a/load");
        assert!(a.contains("200 OK"), "{a}");
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let answer = post(server.addr, "/admin/models/smollm2/load");
        swap.push(started.elapsed());
        assert!(answer.contains("200 OK"), "{answer}");
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (d, f, s) = (median(&mut direct), median(&mut fresh), median(&mut swap));
    let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    println!(
        "swap benchmark: SmolLM2 ({:.1} MB), {runs} runs, medians",
        bytes as f64 / 1e6
    );
    println!(
        "  mistral.rs direct load, warm heap:    {:>7.1} ms  ({:.2} GB/s)",
        ms(d),
        gbps(d)
    );
    println!(
        "  mistral.rs direct load, trimmed heap: {:>7.1} ms  ({:.2} GB/s)",
        ms(f),
        gbps(f)
    );
    println!(
        "  porten unload other + load (HTTP):    {:>7.1} ms  ({:.2} GB/s)",
        ms(s),
        gbps(s)
    );
    println!(
        "  ratio porten / direct (warm heap):    {:.3}x (target <= 1.1x)",
        ms(s) / ms(d)
    );
    println!(
        "  ratio porten / direct (trimmed heap): {:.3}x (target <= 1.1x)",
        ms(s) / ms(f)
    );
}
