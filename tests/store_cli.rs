//! The weight store through the real binary: import/ls/pin/rm/verify/gc/du, serving by store
//! name, kill -9 in the middle of imports, and a corrupt blob caught both by `verify` and at load.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::cli::{ok, porten};
use support::fixtures::{big_gguf, flip_a_byte, write_tiny_chat_model};
use support::http::post_json;
use support::server::Porten;

fn tiny_chat(dir: &Path) -> String {
    write_tiny_chat_model(dir);
    dir.to_str().unwrap().to_string()
}

#[test]
fn the_cli_manages_models_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let model = tiny_chat(&work.path().join("tiny"));
    let imported = ok(&home, &["import", &model, "--name", "tiny"]);
    assert!(imported.contains("imported tiny:latest"), "{imported}");
    ok(&home, &["import", &model, "--name", "tiny:again", "--copy"]);

    let ls = ok(&home, &["ls"]);
    assert!(
        ls.contains("tiny:latest") && ls.contains("tiny:again"),
        "{ls}"
    );
    let show: serde_json::Value = serde_json::from_str(&ok(&home, &["show", "tiny"])).unwrap();
    assert_eq!(show["metadata"]["architecture"], "llama");
    assert_eq!(show["files"].as_array().unwrap().len(), 4, "{show}");

    ok(&home, &["pin", "tiny"]);
    let refused = porten(&home, &["rm", "tiny"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pinned"));
    ok(&home, &["unpin", "tiny"]);
    // Both tags share every blob, so removing one frees nothing.
    assert!(ok(&home, &["rm", "tiny:again"]).contains("freed 0 B"));
    assert!(ok(&home, &["du"]).contains("models       1"));
    assert!(ok(&home, &["verify"]).contains("0 problems"));
    let unknown = porten(&home, &["show", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no model `nope:latest`"));
}

#[test]
fn serve_loads_models_by_store_name_and_a_corrupt_one_fails_alone() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let good = tiny_chat(&work.path().join("good"));
    ok(&home, &["import", &good, "--name", "good"]);
    // A second model with its own weights blob, which then rots on disk.
    let bad_dir = work.path().join("bad");
    write_tiny_chat_model(&bad_dir);
    let weights = std::fs::read(bad_dir.join("model.safetensors")).unwrap();
    let mut altered = weights.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    std::fs::write(bad_dir.join("model.safetensors"), &altered).unwrap();
    ok(
        &home,
        &[
            "import",
            bad_dir.to_str().unwrap(),
            "--name",
            "bad",
            "--copy",
        ],
    );
    let blob = blake3::hash(&altered).to_hex().to_string();
    let blob_path = home.join(format!("store/blobs-v1/blake3/{}/{blob}", &blob[..2]));
    flip_a_byte(&blob_path);

    let server = Porten::start(&["--home", home.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let answer = loop {
        let a = post_json(server.addr, "/v1/chat/completions", &body("bad"), &[]);
        if a.status != 200 || Instant::now() > deadline {
            break a;
        }
    };
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(answer.text().contains("corrupt"), "{}", answer.text());
    let answer = post_json(server.addr, "/v1/chat/completions", &body("good"), &[]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!blob_path.exists(), "the corrupt blob was quarantined");
    let listed = ok(&home, &["ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("good:latest") && l.trim_end().ends_with("yes")),
        "{listed}"
    );
}

#[test]
fn kill_9_at_any_moment_of_an_import_leaves_nothing_half_written() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let file = work.path().join("big.gguf");
    big_gguf(&file, 64, 0);
    let file = file.to_str().unwrap();
    // How long one whole import takes here, so the kills spread over all of it.
    let started = Instant::now();
    ok(&home, &["import", file, "--name", "calibrate", "--copy"]);
    let full = started.elapsed();
    ok(&home, &["rm", "calibrate"]);

    let mut seed = 0x9E37_79B9u64;
    let mut completed = 0;
    for round in 0..16 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = full.mul_f64((seed >> 33) as f64 / (1u64 << 31) as f64 * 1.3);
        let mut args = vec!["import", file, "--name"];
        let name = format!("m{round}");
        args.push(&name);
        if round % 2 == 0 {
            args.push("--copy");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_porten"))
            .args(&args)
            .arg("--home")
            .arg(&home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        if child.wait().unwrap().success() {
            completed += 1;
        }
        // Every model the store lists is whole; no blob is corrupt or missing.
        let verify = porten(&home, &["verify"]);
        assert!(
            verify.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
    eprintln!("{completed} of 16 imports completed before their SIGKILL");
    // A process killed after writing its manifest but before exiting is listed too.
    let ls = ok(&home, &["ls"]);
    let listed = ls.lines().count() - 1;
    assert!(
        (completed..=16).contains(&listed),
        "{completed} imports completed:\n{ls}"
    );
    // What the killed processes left is gone once the store is opened again, and gc finds no
    // stray blobs beyond what it reports.
    ok(&home, &["gc"]);
    let sessions = std::fs::read_dir(home.join("store/tmp-v1"))
        .unwrap()
        .count();
    assert_eq!(sessions, 0, "dead sessions were cleaned up");
    let blobs = support_blob_count(&home.join("store/blobs-v1/blake3"));
    assert!(
        blobs <= 1,
        "one blob at most, shared by every completed import ({blobs})"
    );
    assert_eq!(blobs, usize::from(listed > 0));
}

fn support_blob_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|fan| std::fs::read_dir(fan.path()).unwrap().count())
        .sum()
}
