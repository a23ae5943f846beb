//! Pulling from a Hugging Face Hub: a real Hub-protocol server (olah, offline, serving git
//! repositories with LFS objects) at `HF_ENDPOINT`. A GGUF repository by quantization (the
//! default one, a named one, one it lacks), a safetensors repository at a revision, what the
//! store or the local Hugging Face cache holds is not downloaded again, a corrupt file and a
//! missing repository are refused with nothing stored, the disk budget is kept before a byte,
//! and `porten run hf://...` from an empty store pulls and answers. A download cut off by its
//! server dying resumes with a range request (nginx in front of olah, where the Hub has its CDN).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::cdn::Cdn;
use support::fixtures::write_tiny_chat_model;
use support::hub::Olah;

const BIN: &str = env!("CARGO_BIN_EXE_porten");

fn setup() {
    support::setup_test_deps();
}

fn porten(home: &Path, olah: &Olah, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--home")
        .arg(home)
        .env("HF_ENDPOINT", &olah.endpoint)
        .env("HF_HOME", home.join("hf-home"))
        .env_remove("HF_TOKEN")
        .env_remove("PORTEN_AUTO_DOWNLOAD_MB")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn ok(home: &Path, olah: &Olah, args: &[&str]) -> String {
    let out = porten(home, olah, args, &[]);
    assert!(
        out.status.success(),
        "porten {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(home: &Path, olah: &Olah, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = porten(home, olah, args, env);
    assert!(!out.status.success(), "porten {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn stored(home: &Path, olah: &Olah) -> Vec<Value> {
    let listed: Value = serde_json::from_str(&ok(home, olah, &["ls", "--json"])).unwrap();
    listed["models"].as_array().unwrap().clone()
}

/// The tiny chat model's files in `tiny`, published to olah as `repo` (on `branch`) with a
/// README beside them, as a Hub repository has.
fn publish_tiny(olah: &Olah, tiny: &Path, repo: &str, branch: Option<&str>) {
    let readme = tiny.join("README.md");
    std::fs::write(&readme, "a tiny model").unwrap();
    let files: Vec<(&str, std::path::PathBuf)> = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    ]
    .iter()
    .map(|f| (*f, tiny.join(f)))
    .collect();
    let listed: Vec<(&str, &Path)> = files.iter().map(|(f, p)| (*f, p.as_path())).collect();
    olah.repo(repo, &listed, branch);
}

fn noise(path: &Path, bytes: usize, seed: u8) {
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    std::fs::write(path, data).unwrap();
}

#[test]
fn a_gguf_repo_is_pulled_by_quantization_and_served_by_run() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let smollm2 = support::smollm2();
    let other = work.path().join("other.gguf");
    noise(&other, 200_000, 7);
    olah.repo(
        "team/SmolLM2-GGUF",
        &[
            ("SmolLM2-135M-Instruct-Q4_1.gguf", &smollm2),
            ("SmolLM2-135M-Instruct-Q8_0.gguf", &other),
        ],
        None,
    );
    let home = work.path().join("home");

    // A quantization the repository lacks: the ones it has, and nothing stored.
    let missing = fails(&home, &olah, &["pull", "hf://team/SmolLM2-GGUF:Q6_K"], &[]);
    assert!(
        missing.contains("no Q6_K") && missing.contains("Q4_1, Q8_0"),
        "{missing}"
    );
    // No Q4_K_M and two others: name one.
    let choose = fails(&home, &olah, &["pull", "hf.co/team/SmolLM2-GGUF"], &[]);
    assert!(
        choose.contains("no Q4_K_M") && choose.contains("Q4_1"),
        "{choose}"
    );
    assert!(stored(&home, &olah).is_empty());

    // `fit` sizes it from the listing alone: nothing is pulled.
    let fit: Value = serde_json::from_str(&ok(
        &home,
        &olah,
        &[
            "fit",
            "hf://team/SmolLM2-GGUF:Q4_1",
            "--vram-mb",
            "2048",
            "--json",
        ],
    ))
    .unwrap();
    let row = &fit["models"][0];
    assert_eq!(row["name"], "hf.co/team/SmolLM2-GGUF:Q4_1", "{fit}");
    assert_eq!(
        row["weights"],
        std::fs::metadata(&smollm2).unwrap().len(),
        "{fit}"
    );
    assert_eq!(row["quantization"], "Q4_1");
    assert_eq!(
        (row["assumed_architecture"].as_bool(), row["fits"].as_bool()),
        (Some(true), Some(true)),
        "{fit}"
    );
    assert!(stored(&home, &olah).is_empty());

    let pulled = ok(&home, &olah, &["pull", "hf://team/SmolLM2-GGUF:q4_1"]);
    assert!(
        pulled.contains("pulled hf.co/team/SmolLM2-GGUF:Q4_1"),
        "{pulled}"
    );
    let models = stored(&home, &olah);
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["name"], "hf.co/team/SmolLM2-GGUF:Q4_1");
    assert_eq!(models[0]["quantization"], "Q4_1");
    let again = ok(&home, &olah, &["pull", "hf://team/SmolLM2-GGUF:Q4_1"]);
    assert!(again.contains("is up to date"), "{again}");

    // From an empty store, `run` pulls through its own server and answers.
    let fresh = work.path().join("fresh");
    let (stdout, stderr) = run_earth_question(&fresh, &olah, "hf://team/SmolLM2-GGUF:Q4_1");
    assert!(stdout.contains("Earth"), "{stdout}\n{stderr}");
    assert!(stderr.contains("success"), "{stderr}");
}

#[test]
fn a_safetensors_repo_at_a_revision_and_files_already_on_disk() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let tiny = work.path().join("tiny");
    write_tiny_chat_model(&tiny);
    publish_tiny(&olah, &tiny, "team/tiny", Some("v2"));
    let home = work.path().join("home");

    let unknown = fails(&home, &olah, &["pull", "hf://team/tiny@v9"], &[]);
    assert!(unknown.contains("team/tiny"), "{unknown}");
    let pulled = ok(&home, &olah, &["pull", "hf://team/tiny@v2"]);
    assert!(pulled.contains("pulled hf.co/team/tiny:v2"), "{pulled}");
    let show: Value =
        serde_json::from_str(&ok(&home, &olah, &["show", "hf.co/team/tiny:v2"])).unwrap();
    let paths: Vec<&str> = show["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    let weights = show["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.safetensors")
        .unwrap();
    assert!(
        weights["sha256"].as_str().is_some_and(|s| s.len() == 64),
        "{show}"
    );

    // The same weights under another repository: linked from the store, not downloaded.
    publish_tiny(&olah, &tiny, "team/tiny-copy", None);
    let linked = |home: &Path, name: &str| {
        let out = porten(
            home,
            &olah,
            &["pull", name],
            &[("RUST_LOG", "porten_storage=info")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
            .lines()
            .any(|l| l.contains("linked, not downloaded") && l.contains("file=model.safetensors"))
    };
    assert!(
        linked(&home, "hf://team/tiny-copy"),
        "the store's weights were downloaded again"
    );

    // A file the local Hugging Face cache holds (named by its sha256 there) is linked too.
    let other = work.path().join("other-home");
    let sha = weights["sha256"].as_str().unwrap();
    let blobs = other.join("hf-home/hub/models--team--tiny/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::copy(tiny.join("model.safetensors"), blobs.join(sha)).unwrap();
    assert!(
        linked(&other, "hf://team/tiny@v2"),
        "the cached weights were downloaded again"
    );
}

#[test]
fn corrupt_files_missing_repos_and_the_disk_budget_store_nothing_or_evict_to_fit() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let big = work.path().join("big.gguf");
    noise(&big, 3 << 20, 1);
    olah.repo("team/big-GGUF", &[("big-Q8_0.gguf", &big)], None);
    let home = work.path().join("home");

    let missing = fails(&home, &olah, &["pull", "hf://team/nothing-here"], &[]);
    assert!(missing.contains("private or does not exist"), "{missing}");

    // A budget of 1 MiB cannot take 3 MiB: refused before a byte is written.
    let short = fails(
        &home,
        &olah,
        &["pull", "hf://team/big-GGUF:Q8_0", "--budget-mb", "1"],
        &[],
    );
    assert!(
        short.to_lowercase().contains("room") || short.contains("budget"),
        "{short}"
    );
    let downloads = home.join("store/hub-downloads-v1");
    let written: u64 = walk(&downloads);
    assert_eq!(
        written, 0,
        "bytes were written under a budget that could not hold them"
    );

    // Room is made by the store's eviction policy: a 2 MiB model pulled first is evicted when
    // a 3 MiB one needs the 4 MiB budget, unless it is pinned, and then the pull fails before
    // a byte.
    let small = work.path().join("small.gguf");
    let large = work.path().join("large.gguf");
    support::fixtures::big_gguf(&small, 2, 8);
    support::fixtures::big_gguf(&large, 3, 9);
    olah.repo("team/small-GGUF", &[("small-Q8_0.gguf", &small)], None);
    olah.repo("team/large-GGUF", &[("large-Q8_0.gguf", &large)], None);
    let budget = ["--budget-mb", "4"];
    ok(
        &home,
        &olah,
        &[&["pull", "hf://team/small-GGUF:Q8_0"][..], &budget].concat(),
    );
    let first = stored(&home, &olah)[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&home, &olah, &["pin", &first]);
    let pinned = fails(
        &home,
        &olah,
        &[&["pull", "hf://team/large-GGUF:Q8_0"][..], &budget].concat(),
        &[],
    );
    assert!(
        pinned.contains("not enough room") && pinned.contains("nothing was evicted"),
        "{pinned}"
    );
    assert_eq!(walk(&downloads), 0, "bytes written past a pinned model");
    ok(&home, &olah, &["unpin", &first]);
    ok(
        &home,
        &olah,
        &[&["pull", "hf://team/large-GGUF:Q8_0"][..], &budget].concat(),
    );
    let names: Vec<String> = stored(&home, &olah)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].contains("large"),
        "{first} was not evicted: {names:?}"
    );
    ok(&home, &olah, &["rm", &names[0]]);

    // The LFS object changed under its pointer: the sha256 does not match, nothing is stored.
    let lfs = olah.mirrors.join("models/team/big-GGUF/.git/lfs/objects");
    let object = first_file(&lfs);
    noise(&object, 3 << 20, 2);
    let corrupt = fails(&home, &olah, &["pull", "hf://team/big-GGUF:Q8_0"], &[]);
    assert!(corrupt.contains("arrived corrupt"), "{corrupt}");
    assert!(stored(&home, &olah).is_empty());
}

fn walk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            walk(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn first_file(dir: &Path) -> std::path::PathBuf {
    let entry = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("no file under {}", dir.display()));
    if entry.metadata().unwrap().is_dir() {
        first_file(&entry.path())
    } else {
        entry.path()
    }
}

#[test]
fn with_auto_pull_a_request_pulls_its_model_once_and_without_it_gets_404() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let tiny = work.path().join("tiny");
    write_tiny_chat_model(&tiny);
    publish_tiny(&olah, &tiny, "team/tiny-auto", None);
    let chat = |addr, model: &str| {
        support::http::post_json(
            addr,
            "/v1/chat/completions",
            &serde_json::json!({"model": model, "max_tokens": 3,
                                "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
    };

    // Off (the default): an empty server answers 404 and pulls nothing.
    let off_home = work.path().join("off");
    let off_home_arg = off_home.to_str().unwrap().to_string();
    let env = [("HF_ENDPOINT", olah.endpoint.as_str())];
    let off = support::server::Porten::start_with_env(&["--home", &off_home_arg], &env);
    let refused = chat(off.addr, "hf://team/tiny-auto");
    assert_eq!(refused.status, 404, "{}", refused.text());
    drop(off);

    let home = work.path().join("on");
    let home_arg = home.to_str().unwrap().to_string();
    let env = [
        ("HF_ENDPOINT", olah.endpoint.as_str()),
        ("PORTEN_AUTO_PULL", "1"),
    ];
    let server = support::server::Porten::start_with_env(&["--home", &home_arg], &env);
    let addr = server.addr;
    let answers: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || chat(addr, "hf://team/tiny-auto")))
        .collect();
    for answer in answers {
        let answer = answer.join().unwrap();
        assert_eq!(answer.status, 200, "{}\n{}", answer.text(), server.log());
    }
    let pulls = server
        .log()
        .lines()
        .filter(|l| l.contains("pulled from the Hub") && l.contains("tiny-auto"))
        .count();
    assert_eq!(pulls, 1, "{}", server.log());
    let models = support::http::get(addr, "/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hf.co/team/tiny-auto"], "{models}");
    // A bigger pull shows in /admin/status while the request waits for it, and not after.
    olah.repo(
        "team/smol-auto",
        &[("SmolLM2-Q4_1.gguf", support::smollm2().as_path())],
        None,
    );
    let waiting = std::thread::spawn(move || chat(addr, "hf://team/smol-auto:Q4_1"));
    let mut seen = None;
    while !waiting.is_finished() && seen.is_none() {
        let status = support::http::get(addr, "/admin/status").json();
        if status["pulling"]["total"].as_u64().is_some_and(|t| t > 0) {
            seen = Some(status["pulling"].clone());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(waiting.join().unwrap().status, 200);
    let seen = seen.expect("the pull never showed in /admin/status");
    assert_eq!(seen["model"], "hf://team/smol-auto:Q4_1", "{seen}");
    assert!(
        seen["status"].as_str().unwrap().starts_with("pulling"),
        "{seen}"
    );
    let after = support::http::get(addr, "/admin/status").json();
    assert!(after["pulling"].is_null(), "{after}");

    // A name nobody has fails alone, with the Hub's reason; the pulled model serves on.
    let missing = chat(addr, "hf://team/no-such-model");
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert!(
        missing.text().contains("private or does not exist"),
        "{}",
        missing.text()
    );
    assert_eq!(chat(addr, "hf.co/team/tiny-auto").status, 200);
}

/// `source` split in two GGUF parts as llama.cpp's `gguf-split` writes them: the first with
/// all the metadata and half the tensors, the second with the rest; both carry `split.*`.
fn split_gguf(source: &Path, first: &Path, second: &Path) {
    use candle_core::quantized::gguf_file;
    let mut reader = std::io::BufReader::new(std::fs::File::open(source).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let tensors: Vec<(&str, candle_core::quantized::QTensor)> = names
        .iter()
        .map(|n| {
            let tensor = content
                .tensor(&mut reader, n, &candle_core::Device::Cpu)
                .unwrap();
            (n.as_str(), tensor)
        })
        .collect();
    let half = tensors.len() / 2;
    let split = |no: u16, count: usize| {
        vec![
            ("split.no", gguf_file::Value::U16(no)),
            ("split.count", gguf_file::Value::U16(2)),
            ("split.tensors.count", gguf_file::Value::I32(count as i32)),
        ]
    };
    let mut meta: Vec<(&str, gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    meta.extend(split(0, tensors.len()));
    for (path, meta, part) in [
        (first, meta, &tensors[..half]),
        (second, split(1, tensors.len()), &tensors[half..]),
    ] {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let meta: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
        let part: Vec<(&str, &candle_core::quantized::QTensor)> =
            part.iter().map(|(n, t)| (*n, t)).collect();
        gguf_file::write(&mut out, &meta, &part).unwrap();
    }
}

#[test]
fn a_split_gguf_is_pulled_as_one_model_and_served() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let (first, second) = (
        work.path().join("part1.gguf"),
        work.path().join("part2.gguf"),
    );
    split_gguf(&support::smollm2(), &first, &second);
    olah.repo(
        "team/split-GGUF",
        &[
            ("Q4_1/SmolLM2-Q4_1-00001-of-00002.gguf", &first),
            ("Q4_1/SmolLM2-Q4_1-00002-of-00002.gguf", &second),
        ],
        None,
    );
    let home = work.path().join("home");
    let pulled = ok(&home, &olah, &["pull", "hf://team/split-GGUF:Q4_1"]);
    assert!(
        pulled.contains("pulled hf.co/team/split-GGUF:Q4_1"),
        "{pulled}"
    );
    let show: Value =
        serde_json::from_str(&ok(&home, &olah, &["show", "hf.co/team/split-GGUF:Q4_1"])).unwrap();
    assert_eq!(show["files"].as_array().unwrap().len(), 2, "{show}");
    // Both parts' tensors are counted: the whole model's parameters, not half of them.
    assert_eq!(
        show["metadata"]["parameter_count"], 134_515_008u64,
        "{show}"
    );
    let (stdout, stderr) = run_earth_question(&home, &olah, "hf.co/team/split-GGUF:Q4_1");
    assert!(stdout.contains("Earth"), "{stdout}\n{stderr}");
}

/// `porten run MODEL` with no server to talk to (it serves in its own process) asking
/// SmolLM2's coherence question greedily; stdout and stderr, after checking it succeeded.
fn run_earth_question(home: &Path, olah: &Olah, model: &str) -> (String, String) {
    let out = porten(
        home,
        olah,
        &[
            "run",
            model,
            "--host",
            "127.0.0.1:9",
            "--max-tokens",
            "30",
            "--temperature",
            "0",
            "Name the planet we live on.",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn a_download_cut_off_by_the_server_dying_resumes_where_it_stopped() {
    setup();
    let work = tempfile::tempdir().unwrap();
    let olah = Olah::start(work.path());
    let weights = work.path().join("slow.gguf");
    support::fixtures::big_gguf(&weights, 4, 5);
    let total = weights.metadata().unwrap().len();
    olah.repo("team/slow-GGUF", &[("slow-Q8_0.gguf", &weights)], None);
    // 512 KiB/s: the 4 MiB file takes about 8 s, time enough to cut it off half way.
    let mut cdn = Cdn::start(
        work.path(),
        &olah.endpoint,
        &[("team/slow-GGUF", "slow-Q8_0.gguf", &weights)],
        Some("512k"),
    );
    let home = work.path().join("home");
    let endpoint = cdn.endpoint.clone();
    let pull = || {
        let mut command = Command::new(BIN);
        command
            .args(["pull", "hf://team/slow-GGUF:Q8_0", "--home"])
            .arg(&home)
            .env("HF_ENDPOINT", &endpoint)
            .env("HF_HOME", home.join("hf-home"))
            .env_remove("HF_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command
    };

    let first = pull().spawn().unwrap();
    let downloads = home.join("store/hub-downloads-v1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let partial = loop {
        let found = find_partial(&downloads).filter(|p| p.metadata().unwrap().len() >= 1 << 20);
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no partial file grew to 1 MiB"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    cdn.kill();
    let cut = first.wait_with_output().unwrap();
    assert!(!cut.status.success(), "the pull survived its server");
    let said = String::from_utf8_lossy(&cut.stderr);
    assert!(
        said.contains("download of slow-Q8_0.gguf broke off"),
        "{said}"
    );
    let kept = partial.metadata().unwrap().len();
    assert!(kept >= 1 << 20 && kept < total, "{kept} bytes kept");
    assert!(
        stored(&home, &olah).is_empty(),
        "a cut-off pull stored a model"
    );

    cdn.restart(None);
    let second = pull().output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The second request asked for the rest and got it (206), not the whole file again.
    let log = cdn.access_log();
    let resumed = format!(
        "GET /lfs/slow-Q8_0.gguf 206 {} \"bytes={kept}-\"",
        total - kept
    );
    assert!(log.contains(&resumed), "no `{resumed}` in:\n{log}");
    let models = stored(&home, &olah);
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0]["size_bytes"], total, "{models:?}");
    assert!(
        find_partial(&downloads).is_none(),
        "a partial file was left behind"
    );
    // Both hashes of the joined file are right: the store verifies it.
    ok(&home, &olah, &["verify"]);
}

fn find_partial(dir: &Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_partial(&path) {
                return Some(found);
            }
        } else if path.to_string_lossy().ends_with(".partial") {
            return Some(path);
        }
    }
    None
}
