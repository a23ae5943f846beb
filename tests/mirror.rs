//! The weight mirror through the real binary against a real S3-compatible server (moto) and a
//! `file://` directory: push and pull move only what the other side lacks, a corrupt object is
//! refused, a dead server's download resumes, 5xx answers are retried through, pulls respect
//! the disk budget, and `serve` pulls a model on its first request, once for many requests.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{json, Value};
use support::fixtures::{big_gguf, write_tiny_chat_model};
use support::http::{get, post_json, probe};
use support::s3::{FlakyProxy, Moto};
use support::server::Porten;

const BUCKET: &str = "team";
const MIRROR: &str = "s3://team/models";

/// A porten command with `home` and `env`, nothing inherited that could change its mind.
fn command(home: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_porten"));
    command
        .args(args)
        .arg("--home")
        .arg(home)
        .env_remove("PORTEN_AUTO_DOWNLOAD_MB")
        .env_remove("PORTEN_MIRROR")
        .env_remove("PORTEN_MIRROR_RETRIES")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
}

fn porten(home: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    command(home, args, env).output().expect("run porten")
}

fn ok(home: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let out = porten(home, args, env);
    assert!(
        out.status.success(),
        "porten {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(home: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let out = porten(home, args, env);
    assert!(!out.status.success(), "porten {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// moto with the team's bucket, and the environment that points porten at it.
fn mirror_server() -> (Moto, Vec<(String, String)>) {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let mut env = moto.env();
    env.push(("PORTEN_MIRROR".into(), MIRROR.into()));
    (moto, env)
}

/// `tiny`, and `tiny2`, which differs from it in config.json only (three files shared).
fn two_related_models(work: &Path) -> (String, String) {
    let tiny = work.join("tiny");
    write_tiny_chat_model(&tiny);
    let tiny2 = work.join("tiny2");
    write_tiny_chat_model(&tiny2);
    let config = tiny2.join("config.json");
    let mut value: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["rope_theta"] = json!(20000.0);
    std::fs::write(&config, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    (path_str(&tiny), path_str(&tiny2))
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

fn blocking<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// The files of a model as the store lists them.
fn files_of(home: &Path, model: &str, env: &[(String, String)]) -> Value {
    let show: Value = serde_json::from_str(&ok(home, &["show", model], env)).unwrap();
    show["files"].clone()
}

/// The number logged as `field=N` on the line containing `message`.
fn logged_number(stderr: &str, message: &str, field: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no `{message}` line in:\n{stderr}"));
    let start = line.find(&format!("{field}=")).expect("the field") + field.len() + 1;
    line[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn push_and_pull_move_only_what_the_other_side_lacks() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (moto, env) = mirror_server();
    let (tiny, tiny2) = two_related_models(work.path());
    ok(&a, &["import", &tiny, "--name", "tiny"], &env);
    ok(&a, &["import", &tiny2, "--name", "tiny2"], &env);

    let pushed = ok(&a, &["push", "tiny"], &env);
    assert!(
        pushed.contains("4 blobs uploaded") && pushed.contains("0 already there"),
        "{pushed}"
    );
    assert!(pushed.contains("manifest created"), "{pushed}");
    let pushed = ok(&a, &["push", "tiny2"], &env);
    assert!(
        pushed.contains("1 blobs uploaded") && pushed.contains("3 already there"),
        "{pushed}"
    );
    let again = ok(&a, &["push", "tiny"], &env);
    assert!(
        again.contains("0 blobs uploaded") && again.contains("manifest unchanged"),
        "{again}"
    );
    // The bucket holds each distinct file once.
    let blobs = blocking(async {
        let client = moto.client(BUCKET);
        let prefix = object_store::path::Path::from("models/porten-v1/blobs");
        client.list_with_delimiter(Some(&prefix)).await
    })
    .unwrap();
    assert_eq!(blobs.objects.len(), 5);

    let remote = ok(&b, &["ls", "--remote"], &env);
    assert!(
        remote.contains("tiny:latest") && remote.contains("tiny2:latest"),
        "{remote}"
    );
    let found = ok(&b, &["search", "TINY2"], &env);
    assert!(
        found.contains("tiny2:latest") && !found.contains("tiny:latest"),
        "{found}"
    );

    let pulled = ok(&b, &["pull", "tiny"], &env);
    assert!(
        pulled.contains("4 blobs downloaded") && pulled.contains("0 already stored"),
        "{pulled}"
    );
    let pulled = ok(&b, &["pull", "tiny2"], &env);
    assert!(
        pulled.contains("1 blobs downloaded") && pulled.contains("3 already stored"),
        "{pulled}"
    );
    assert!(ok(&b, &["pull", "tiny"], &env).contains("up to date"));
    assert!(ok(&b, &["ls", "--remote"], &env).contains("yes"));
    assert!(ok(&b, &["verify"], &env).contains("0 problems"));
    for model in ["tiny", "tiny2"] {
        assert_eq!(files_of(&a, model, &env), files_of(&b, model, &env));
    }
}

#[test]
fn a_missing_model_and_a_missing_mirror_are_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let (_moto, env) = mirror_server();
    let error = fails(work.path(), &["pull", "nope"], &env);
    assert!(
        error.contains("no model `nope:latest` in the mirror s3://team/models"),
        "{error}"
    );
    let no_mirror: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "PORTEN_MIRROR")
        .cloned()
        .collect();
    let error = fails(work.path(), &["pull", "tiny"], &no_mirror);
    assert!(error.contains("no mirror configured"), "{error}");
    let error = fails(work.path(), &["push", "tiny"], &env);
    assert!(
        error.contains("no model `tiny:latest` in the store"),
        "{error}"
    );
}

#[test]
fn a_corrupted_object_in_the_bucket_is_refused_and_nothing_corrupt_is_stored() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (moto, env) = mirror_server();
    let (tiny, _) = two_related_models(work.path());
    ok(&a, &["import", &tiny, "--name", "tiny"], &env);
    ok(&a, &["push", "tiny"], &env);
    let files = files_of(&a, "tiny", &env);
    let weights = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.safetensors")
        .unwrap()["blake3"]
        .as_str()
        .unwrap()
        .to_string();
    // Same length, one bit different.
    blocking(async {
        let client = moto.client(BUCKET);
        let key = object_store::path::Path::from(format!("models/porten-v1/blobs/{weights}"));
        let mut bytes = client
            .get(&key)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes[1000] ^= 1;
        client.put(&key, bytes.into()).await.unwrap();
    });

    let error = fails(&b, &["pull", "tiny"], &env);
    assert!(
        error.contains(&format!("blob {weights} from the mirror")) && error.contains("corrupt"),
        "{error}"
    );
    assert!(!ok(&b, &["ls"], &env).contains("tiny"));
    let store = b.join("store");
    assert!(!files_under(&store.join("blobs-v1"))
        .iter()
        .any(|p| p.ends_with(&weights)));
    assert!(files_under(&store.join("partial-v1")).is_empty());
    assert!(ok(&b, &["verify"], &env).contains("0 problems"));
}

#[test]
fn a_download_in_parallel_ranges_cut_off_by_a_dead_server_resumes_where_it_stopped() {
    resume_after_the_server_dies(4);
}

#[test]
fn a_streamed_download_cut_off_by_a_dead_server_resumes_where_it_stopped() {
    resume_after_the_server_dies(1);
}

fn resume_after_the_server_dies(concurrency: usize) {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (mut moto, env) = mirror_server();
    let big = work.path().join("big.gguf");
    big_gguf(&big, 64, 1);
    ok(
        &a,
        &["import", big.to_str().unwrap(), "--name", "big"],
        &env,
    );
    ok(&a, &["push", "big"], &env);
    let size = std::fs::metadata(&big).unwrap().len();
    // Small parts and a short patience.
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("porten.toml"),
        format!(
            "[mirror]\nconcurrency = {concurrency}\npart_size_mb = 1\nretries = 1\n\
             retry_timeout_secs = 1\n"
        ),
    )
    .unwrap();
    // Through a proxy passing 32 MiB/s, so that the cut lands mid-download however busy the
    // machine is.
    let slow = FlakyProxy::start_throttled(moto.addr, 0, Some(32 << 20));
    let mut via_slow = moto.env_via(slow.addr);
    via_slow.push(("PORTEN_MIRROR".into(), MIRROR.into()));
    let pull = command(&b, &["pull", "big"], &via_slow)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partials = b.join("store/partial-v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written: u64 = files_under(&partials)
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        if written >= 8 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the download never got going");
        std::thread::sleep(Duration::from_millis(2));
    }
    moto.kill();
    let out = pull.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the pull outlived its server");
    assert!(stderr.contains("mirror s3://team/models"), "{stderr}");
    let partial = files_under(&partials).remove(0);
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < size, "kept {kept} of {size}");

    // moto keeps objects in memory: the restarted server is given them again.
    let moto = Moto::start_on(moto.addr.port());
    moto.create_bucket(BUCKET);
    ok(&a, &["push", "big"], &env);
    let out = porten(&b, &["pull", "big"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(logged_number(&stderr, "pulled", "resumed_bytes"), kept);
    assert_eq!(
        logged_number(&stderr, "pulled", "fetched_bytes"),
        size - kept
    );
    assert!(ok(&b, &["verify"], &env).contains("0 problems"));
    assert!(files_under(&partials).is_empty());
}

#[test]
fn a_server_answering_5xx_for_a_while_is_retried_through() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (moto, env) = mirror_server();
    let (tiny, _) = two_related_models(work.path());
    let big = work.path().join("big.gguf");
    big_gguf(&big, 6, 4);
    ok(&a, &["import", &tiny, "--name", "tiny"], &env);
    ok(
        &a,
        &["import", big.to_str().unwrap(), "--name", "big"],
        &env,
    );
    ok(&a, &["push", "tiny"], &env);
    ok(&a, &["push", "big"], &env);
    // Parallel 1 MiB ranges for `big`, so the failures land among them too.
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("porten.toml"),
        "[mirror]\nconcurrency = 4\npart_size_mb = 1\n",
    )
    .unwrap();
    let proxy = FlakyProxy::start(moto.addr, 12);
    let mut via_proxy = moto.env_via(proxy.addr);
    via_proxy.push(("PORTEN_MIRROR".into(), MIRROR.into()));
    let pulled = ok(&b, &["pull", "tiny"], &via_proxy);
    assert!(pulled.contains("4 blobs downloaded"), "{pulled}");
    let pulled = ok(&b, &["pull", "big"], &via_proxy);
    assert!(pulled.contains("1 blobs downloaded"), "{pulled}");
    assert_eq!(proxy.failures_served(), 12);
    assert!(ok(&b, &["verify"], &env).contains("0 problems"));
}

#[test]
fn a_file_mirror_works_like_a_bucket() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let mirror_dir = work.path().join("mirror");
    std::fs::create_dir_all(&mirror_dir).unwrap();
    let env = vec![(
        "PORTEN_MIRROR".to_string(),
        format!("file://{}", mirror_dir.display()),
    )];
    let (tiny, tiny2) = two_related_models(work.path());
    ok(&a, &["import", &tiny, "--name", "tiny"], &env);
    ok(&a, &["import", &tiny2, "--name", "tiny2"], &env);
    assert!(ok(&a, &["push", "tiny"], &env).contains("4 blobs uploaded"));
    assert!(ok(&a, &["push", "tiny2"], &env).contains("1 blobs uploaded"));
    assert_eq!(files_under(&mirror_dir.join("porten-v1/blobs")).len(), 5);
    assert!(ok(&b, &["pull", "tiny2"], &env).contains("4 blobs downloaded"));
    assert!(ok(&b, &["pull", "tiny"], &env).contains("3 already stored"));
    assert!(ok(&b, &["verify"], &env).contains("0 problems"));
}

/// A plain HTTP server (Python's, which ignores Range) in front of a mirror directory: pulls
/// work, pushes are refused.
#[test]
fn an_http_mirror_is_read_only() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let mirror_dir = work.path().join("mirror");
    std::fs::create_dir_all(&mirror_dir).unwrap();
    let file_env = vec![(
        "PORTEN_MIRROR".to_string(),
        format!("file://{}", mirror_dir.display()),
    )];
    let (tiny, _) = two_related_models(work.path());
    ok(&a, &["import", &tiny, "--name", "tiny"], &file_env);
    ok(&a, &["push", "tiny"], &file_env);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&mirror_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    while !probe(addr, "/").is_some_and(|text| text.contains("Directory listing")) {
        assert!(server.try_wait().unwrap().is_none(), "http.server exited");
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("porten.toml"),
        format!("[mirror]\nurl = \"http://127.0.0.1:{port}/\"\n[mirror.options]\nallow_http = \"true\"\n"),
    )
    .unwrap();
    let pulled = ok(&b, &["pull", "tiny"], &[]);
    assert!(pulled.contains("4 blobs downloaded"), "{pulled}");
    assert!(ok(&b, &["verify"], &[]).contains("0 problems"));
    let error = fails(&b, &["push", "tiny"], &[]);
    assert!(error.contains("read-only mirror"), "{error}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn pulls_make_room_through_eviction_or_fail_before_downloading() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (_moto, env) = mirror_server();
    let (wanted, other) = (
        work.path().join("wanted.gguf"),
        work.path().join("other.gguf"),
    );
    big_gguf(&wanted, 24, 2);
    big_gguf(&other, 24, 3);
    ok(
        &a,
        &["import", wanted.to_str().unwrap(), "--name", "wanted"],
        &env,
    );
    ok(&a, &["push", "wanted"], &env);
    ok(
        &b,
        &[
            "import",
            other.to_str().unwrap(),
            "--name",
            "other",
            "--copy",
        ],
        &env,
    );

    // Room for one of the two: the pinned one stays and the pull stops before a byte.
    ok(&b, &["pin", "other"], &env);
    let error = fails(&b, &["pull", "wanted", "--budget-mb", "40"], &env);
    assert!(error.contains("not enough room in the store"), "{error}");
    assert!(files_under(&b.join("store/partial-v1")).is_empty());
    // Unpinned, it is evicted to make room.
    ok(&b, &["unpin", "other"], &env);
    ok(&b, &["pull", "wanted", "--budget-mb", "40"], &env);
    let ls = ok(&b, &["ls"], &env);
    assert!(
        ls.contains("wanted:latest") && !ls.contains("other:latest"),
        "{ls}"
    );
    // A budget smaller than the model: a clear refusal.
    let c = work.path().join("c");
    let error = fails(&c, &["pull", "wanted", "--budget-mb", "10"], &env);
    assert!(error.contains("not enough room in the store"), "{error}");
}

/// Also: once the mirror is gone, a model not pulled yet fails with the reason, and the server
/// goes on serving the one it has.
#[test]
fn serve_pulls_a_model_on_its_first_request_once_for_concurrent_requests() {
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a");
    let (mut moto, mut env) = mirror_server();
    let (tiny, tiny2) = two_related_models(work.path());
    ok(&a, &["import", &tiny, "--name", "tiny"], &env);
    ok(&a, &["import", &tiny2, "--name", "tiny2"], &env);
    ok(&a, &["push", "tiny"], &env);
    ok(&a, &["push", "tiny2"], &env);

    env.push(("PORTEN_MIRROR_RETRIES".into(), "1".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Porten::start_with_env(&[], &env);
    let models = get(server.addr, "/v1/models").json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny", "tiny2"], "{models}");
    let addr = server.addr;
    let answers: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                post_json(
                    addr,
                    "/v1/chat/completions",
                    &json!({"model": "tiny", "max_tokens": 3,
                            "messages": [{"role": "user", "content": format!("hi {i}")}]}),
                    &[],
                )
            })
        })
        .collect();
    for answer in answers {
        let answer = answer.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let pulls = server
        .log()
        .lines()
        .filter(|l| l.contains(" pulled "))
        .count();
    assert_eq!(pulls, 1, "{}", server.log());
    let metrics = get(server.addr, "/metrics").text();
    let pulled_ok = metrics
        .lines()
        .find(|l| l.starts_with("porten_store_pulls_total") && l.contains("outcome=\"ok\""))
        .unwrap_or_else(|| panic!("no pull counted:\n{metrics}"));
    assert!(pulled_ok.ends_with(" 1"), "{pulled_ok}");

    moto.kill();
    let chat = |model: &str| {
        post_json(
            addr,
            "/v1/chat/completions",
            &json!({"model": model, "max_tokens": 3,
                    "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
    };
    let refused = chat("tiny2");
    assert!(refused.status >= 500, "{}", refused.text());
    let message = refused.json()["error"]["message"].to_string();
    assert!(
        message.contains("cannot pull `tiny2:latest` from the mirror"),
        "{message}"
    );
    assert_eq!(chat("tiny").status, 200);
}
