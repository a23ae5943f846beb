//! Many machines behind one `porten hub`: real `porten serve` nodes, each in its own network
//! namespace (a veth pair to this one), each with its own store and budget, all pulling from
//! one moto mirror. Models land where there is room (a node with the weights first), the
//! fleet's least recently used idle model makes room, a killed node's traffic moves on, a
//! restarted hub picks the fleet up from the next reports, a request waits rather than unload
//! a busy model, a busy model gets a second copy, a stream whose node dies ends with an error
//! event in its dialect, and a stranger's token is refused both ways.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fixtures::write_tiny_chat_model;
use support::http::{get, post_json};
use support::netns::Netns;
use support::s3::Moto;
use support::server::Porten;

const TOKEN: &str = "fleet-secret";
const HUB_ANNOUNCE: &str = "porten hub listening on http://";
const NODE_ANNOUNCE: &str = "porten listening on http://";

/// The mirror with tiny chat models `m1`..`m<count>` (each its own config, so its own
/// model), and the estimate of one in bytes.
fn mirror_with_models(count: usize) -> (Moto, u64) {
    let names: Vec<String> = (1..=count).map(|i| format!("m{i}")).collect();
    mirror_with(&names.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The mirror with a tiny chat model under each name, each its own model; the estimate of one.
fn mirror_with(names: &[&str]) -> (Moto, u64) {
    let moto = Moto::start_on_every_address();
    moto.create_bucket("team");
    let publisher = tempfile::tempdir().unwrap();
    let env = mirror_env(&moto, moto.addr);
    for (i, name) in names.iter().enumerate() {
        let dir = publisher.path().join(name);
        write_tiny_chat_model(&dir);
        let config = dir.join("config.json");
        let mut value: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        value["rope_theta"] = json!(10001.0 + i as f64);
        std::fs::write(&config, serde_json::to_vec(&value).unwrap()).unwrap();
        cli(
            publisher.path(),
            &["import", dir.to_str().unwrap(), "--name", name],
            &env,
        );
        cli(publisher.path(), &["push", name], &env);
    }
    let fit: Value =
        serde_json::from_str(&cli(publisher.path(), &["fit", names[0], "--json"], &env)).unwrap();
    let estimate = fit["models"][0]["total"].as_u64().expect("an estimate");
    (moto, estimate)
}

fn mirror_env(_moto: &Moto, endpoint: SocketAddr) -> Vec<(String, String)> {
    let mut env = support::s3::client_env(endpoint);
    env.push(("PORTEN_MIRROR".into(), "s3://team/models".into()));
    env
}

fn cli(home: &Path, args: &[&str], env: &[(String, String)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_porten"))
        .args(args)
        .arg("--home")
        .arg(home)
        .env_remove("PORTEN_AUTO_DOWNLOAD_MB")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "porten {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// MiB that hold one model of `estimate` bytes (and never two), times `share` of the gap.
fn budget_mb(estimate: u64, share: f64) -> String {
    let mib = estimate as f64 / f64::from(1 << 20);
    ((mib * share).ceil() as u64).to_string()
}

/// The hub, on every address of this namespace (port 0: a fresh one).
fn start_hub(port: u16, env: &[(&str, &str)]) -> (Porten, SocketAddr) {
    let listen = format!("0.0.0.0:{port}");
    let hub = Porten::launch_here(&["hub", "--listen", &listen], &[], env, HUB_ANNOUNCE);
    let addr = SocketAddr::from(([127, 0, 0, 1], hub.addr.port()));
    (hub, addr)
}

/// A running node with the namespace it runs in and its home, both gone when it is dropped.
struct Node {
    server: Porten,
    _netns: Netns,
    _home: tempfile::TempDir,
}

/// A node in a fresh namespace with an empty store; see [`start_node_at`].
fn start_node(
    name: &str,
    moto: &Moto,
    hub_ports: &[u16],
    budget_mb: &str,
    extra: &[(&str, &str)],
) -> Node {
    let home = tempfile::tempdir().unwrap();
    start_node_at(name, home, moto, hub_ports, budget_mb, extra)
}

/// A node named `name` in a fresh network namespace, joined to the hubs at `hub_ports`, pulling
/// from the mirror within `budget_mb` of memory; `home` is its store's home.
fn start_node_at(
    name: &str,
    home: tempfile::TempDir,
    moto: &Moto,
    hub_ports: &[u16],
    budget_mb: &str,
    extra: &[(&str, &str)],
) -> Node {
    let netns = Netns::new();
    let moto_there = SocketAddr::from((netns.host_ip, moto.addr.port()));
    let mirror = mirror_env(moto, moto_there);
    let hub_url: Vec<String> = hub_ports
        .iter()
        .map(|port| format!("http://{}:{port}", netns.host_ip))
        .collect();
    let hub_url = hub_url.join(",");
    let listen = format!("{}:0", netns.ip);
    let home_path = home.path().to_str().unwrap().to_string();
    let mut env: Vec<(&str, &str)> = mirror
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("PORTEN_HOME", home_path.as_str()),
        ("PORTEN_HUB", hub_url.as_str()),
        ("PORTEN_NODE_NAME", name),
        ("PORTEN_VRAM_BUDGET_MB", budget_mb),
        ("PORTEN_KEEP_ALIVE", "-1"),
    ]);
    env.extend_from_slice(extra);
    let server = Porten::launch_in(
        &netns.name,
        &["serve", "--listen", &listen],
        &[],
        &env,
        NODE_ANNOUNCE,
    );
    Node {
        server,
        _netns: netns,
        _home: home,
    }
}

fn status(hub: SocketAddr) -> Value {
    let answer = get(hub, "/hub/status");
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// Waits until `wanted` holds of the hub's status, for at most `secs`.
fn wait_for(hub: SocketAddr, secs: u64, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = status(hub);
        if wanted(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s: {now:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn live_nodes(status: &Value) -> usize {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["live"] == true)
        .count()
}

/// The live nodes that have `model` loaded.
fn holders(status: &Value, model: &str) -> Vec<String> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["live"] == true)
        .filter(|n| {
            n["models"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["model"] == model && m["state"] == "loaded")
        })
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

/// A one-token chat through the hub: the node that answered, or the failed answer's status.
fn chat(hub: SocketAddr, model: &str) -> Result<String, (u16, String)> {
    let answer = post_json(
        hub,
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": 2,
                "messages": [{"role": "user", "content": "hello"}]}),
        &[],
    );
    if answer.status != 200 {
        return Err((answer.status, answer.text()));
    }
    assert_eq!(
        answer.json()["object"],
        "chat.completion",
        "{}",
        answer.text()
    );
    Ok(answer
        .header("x-porten-node")
        .expect("the hub names the node")
        .to_string())
}

fn served(hub: SocketAddr, model: &str) -> String {
    chat(hub, model).unwrap_or_else(|(status, text)| panic!("{model}: {status} {text}"))
}

#[test]
fn a_fleet_places_models_where_they_fit_moves_off_a_dead_node_and_survives_a_hub_restart() {
    let (moto, estimate) = mirror_with_models(3);
    let hub_env = [
        ("PORTEN_HUB_TOKEN", TOKEN),
        ("PORTEN_HUB_MIN_AGE_SECS", "0"),
    ];
    let (mut hub, hub_addr) = start_hub(0, &hub_env);
    let hub_port = hub_addr.port();
    // n0 is the smallest but has m3's weights; n1 and n2 have more room and nothing.
    let n0_home = tempfile::tempdir().unwrap();
    cli(
        n0_home.path(),
        &["pull", "m3"],
        &mirror_env(&moto, moto.addr),
    );
    let token = [("PORTEN_HUB_TOKEN", TOKEN)];
    let small = budget_mb(estimate, 1.2);
    let large = budget_mb(estimate, 1.8);
    let mut nodes = vec![
        start_node_at("n0", n0_home, &moto, &[hub_port], &small, &token),
        start_node("n1", &moto, &[hub_port], &large, &token),
        start_node("n2", &moto, &[hub_port], &large, &token),
    ];
    for node in &nodes {
        assert!(
            node.server.wait_for_log("joined the hub", 30),
            "{}",
            node.server.log()
        );
    }
    wait_for(hub_addr, 10, "three live nodes", |s| live_nodes(s) == 3);

    // A node with the weights beats ones with more free memory that would pull them.
    assert_eq!(served(hub_addr, "m3"), "n0");
    let placed = status(hub_addr);
    let first = &placed["placements"][0];
    assert_eq!(
        (first["node"].as_str(), first["pull"].as_bool()),
        (Some("n0"), Some(false)),
        "{placed:#}"
    );
    // Three models, three nodes that each hold one.
    let a = served(hub_addr, "m1");
    let b = served(hub_addr, "m2");
    let mut all = vec!["n0".to_string(), a.clone(), b.clone()];
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        3,
        "each model on its own node: m1 on {a}, m2 on {b}"
    );
    assert_eq!(
        served(hub_addr, "m1"),
        a,
        "a loaded model is served where it is"
    );

    // SIGKILL m2's node under steady traffic: its requests move on, and m2 is placed again
    // (in the place of the fleet's least recently used idle model).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut nodes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match chat(hub_addr, "m2") {
                    Ok(node) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        nodes.push(node);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            nodes
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // n0's m3, used first, is the fleet's least recently used idle model (m1 was used since).
    let victim: usize = b[1..].parse().unwrap();
    let before_kill = ok.load(Ordering::SeqCst);
    assert!(before_kill > 0, "traffic flows before the kill");
    nodes[victim].server.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::SeqCst) < before_kill + 20 {
        assert!(
            Instant::now() < deadline,
            "traffic did not resume: {:#}",
            status(hub_addr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let answered_by = traffic.join().unwrap();
    assert!(
        failed.load(Ordering::SeqCst) <= 1,
        "only a request in flight at the kill may fail: {} failed, {} ok",
        failed.load(Ordering::SeqCst),
        ok.load(Ordering::SeqCst)
    );
    let moved_to = answered_by.last().unwrap().clone();
    assert_eq!(
        moved_to, "n0",
        "m2 moved to the node of the fleet's least recently used model"
    );
    let now = wait_for(hub_addr, 10, "the dead node out, m2 reported on n0", |s| {
        live_nodes(s) == 2 && holders(s, "m2") == ["n0"]
    });
    let replacement = now["placements"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(replacement["model"], "m2", "{now:#}");
    assert_eq!(
        replacement["evict"],
        json!(["m3"]),
        "it unloaded the idle model there to make room: {now:#}"
    );
    assert_eq!(
        holders(&now, "m1"),
        vec![a.clone()],
        "the other idle model stays"
    );

    // Restart the hub on its port: routing resumes from the nodes' next reports, and the
    // model loaded before is served where it is, not placed again.
    hub.kill();
    let (restarted, _) = start_hub(hub_port, &hub_env);
    hub = restarted;
    wait_for(hub_addr, 10, "the fleet known again", |s| {
        live_nodes(s) == 2
    });
    assert_eq!(served(hub_addr, "m2"), moved_to);
    assert!(
        status(hub_addr)["placements"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was placed again"
    );

    // Every model in the fleet busy: a new one waits at the hub rather than unload a busy
    // one, and is placed once they go idle.
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = ["m1", "m2", "m1", "m2", "m1", "m2"]
        .into_iter()
        .map(|model| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    served(hub_addr, model);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let newcomer = std::thread::spawn(move || chat(hub_addr, "m3"));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !newcomer.is_finished(),
        "m3 waits while both models are busy"
    );
    let waiting = status(hub_addr);
    assert_eq!(waiting["waiting"], 1, "{waiting:#}");
    assert_eq!(holders(&waiting, "m1"), vec![a.clone()], "busy m1 stays");
    assert_eq!(
        holders(&waiting, "m2"),
        vec![moved_to.clone()],
        "busy m2 stays"
    );
    stop.store(true, Ordering::SeqCst);
    for thread in busy {
        thread.join().unwrap();
    }
    let placed_on = newcomer
        .join()
        .unwrap()
        .expect("m3 answered once room was made");
    assert!([a.as_str(), moved_to.as_str()].contains(&placed_on.as_str()));
    drop(hub);
}

#[test]
fn a_stranger_is_refused_both_ways() {
    let (moto, estimate) = mirror_with_models(1);
    let budget = budget_mb(estimate, 1.8);
    // A node with the wrong token: the hub refuses it, and it never appears.
    let (_hub, hub_addr) = start_hub(0, &[("PORTEN_HUB_TOKEN", TOKEN)]);
    let stranger = start_node(
        "stranger",
        &moto,
        &[hub_addr.port()],
        &budget,
        &[("PORTEN_HUB_TOKEN", "guess")],
    );
    assert!(
        stranger
            .server
            .wait_for_log("wrong or missing join token", 30),
        "{}",
        stranger.server.log()
    );
    assert!(status(hub_addr)["nodes"].as_array().unwrap().is_empty());
    let refused = chat(hub_addr, "m1").unwrap_err();
    assert_eq!(refused.0, 503, "no node: {}", refused.1);
    // A hub without the token cannot prove it has it: the node does not trust it.
    let (_open_hub, open_addr) = start_hub(0, &[]);
    let wary = start_node(
        "wary",
        &moto,
        &[open_addr.port()],
        &budget,
        &[("PORTEN_HUB_TOKEN", TOKEN)],
    );
    assert!(
        wary.server
            .wait_for_log("did not prove it holds the join token", 30),
        "{}",
        wary.server.log()
    );
}

#[test]
fn a_model_busy_on_every_copy_gets_a_second_one_and_the_idle_copy_goes() {
    let (moto, estimate) = mirror_with_models(1);
    let budget = budget_mb(estimate, 1.8);
    let hub_home = tempfile::tempdir().unwrap();
    std::fs::write(
        hub_home.path().join("porten.toml"),
        "[fleet]\nhot_queue = 2\nhot_secs = 1\nmin_age_secs = 0\n",
    )
    .unwrap();
    let hub_home_path = hub_home.path().to_str().unwrap().to_string();
    let (_hub, hub_addr) = start_hub(0, &[("PORTEN_HOME", hub_home_path.as_str())]);
    let node_config = |dir: &tempfile::TempDir| {
        std::fs::write(
            dir.path().join("porten.toml"),
            "[[models]]\nid = \"m1\"\nmax_concurrency = 1\nkeep_alive = \"3s\"\n",
        )
        .unwrap();
    };
    let (h0, h1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    node_config(&h0);
    node_config(&h1);
    let _nodes = [
        start_node_at("c0", h0, &moto, &[hub_addr.port()], &budget, &[]),
        start_node_at("c1", h1, &moto, &[hub_addr.port()], &budget, &[]),
    ];
    wait_for(hub_addr, 30, "two live nodes", |s| live_nodes(s) == 2);
    let first = served(hub_addr, "m1");
    // Sixteen clients at once against one engine slot: every copy has a queue.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut nodes = std::collections::BTreeSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let answer = post_json(
                        hub_addr,
                        "/v1/chat/completions",
                        &json!({"model": "m1", "max_tokens": 64,
                                "messages": [{"role": "user", "content": "count to a hundred"}]}),
                        &[],
                    );
                    assert_eq!(answer.status, 200, "{}", answer.text());
                    nodes.insert(answer.header("x-porten-node").unwrap().to_string());
                }
                nodes
            })
        })
        .collect();
    let both = wait_for(hub_addr, 30, "a second copy", |s| {
        holders(s, "m1").len() == 2
    });
    let second = &both["placements"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        second["reason"]
            .as_str()
            .unwrap()
            .starts_with("second copy"),
        "{both:#}"
    );
    assert_ne!(second["node"].as_str().unwrap(), first);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let mut answered_by = std::collections::BTreeSet::new();
    for client in clients {
        answered_by.extend(client.join().unwrap());
    }
    assert_eq!(answered_by.len(), 2, "both copies served: {answered_by:?}");
    // Idle, the copies go by the nodes' keep-alive (3 s).
    wait_for(hub_addr, 20, "the idle copies gone", |s| {
        holders(s, "m1").is_empty()
    });
}

#[test]
fn the_example_fleet_plugin_decides_and_a_looping_one_falls_back_on_hubs_side_by_side() {
    let plugins = support::built_plugins();
    let example = plugins.join("coding_on_gpus.wasm");
    let looping = plugins.join("fleet_loop_forever.wasm");
    let (moto, estimate) = mirror_with(&["qwen-coder", "chat"]);
    let (_deciding, deciding_addr) =
        start_hub(0, &[("PORTEN_FLEET_PLUGIN", example.to_str().unwrap())]);
    let (looping_hub, looping_addr) =
        start_hub(0, &[("PORTEN_FLEET_PLUGIN", looping.to_str().unwrap())]);
    // Both nodes report to both hubs; the Mac has more room, so spreading would pick it.
    let gpu = start_node(
        "gpu-1",
        &moto,
        &[deciding_addr.port(), looping_addr.port()],
        &budget_mb(estimate, 1.5),
        &[],
    );
    let mac = start_node(
        "mac",
        &moto,
        &[deciding_addr.port(), looping_addr.port()],
        &budget_mb(estimate, 1.9),
        &[],
    );
    for hub in [deciding_addr, looping_addr] {
        wait_for(hub, 30, "both nodes", |s| live_nodes(s) == 2);
    }
    assert_eq!(
        served(deciding_addr, "qwen-coder"),
        "gpu-1",
        "the plugin keeps coding models on GPUs"
    );
    let placed = status(deciding_addr);
    assert_eq!(
        placed["placements"][0]["reason"], "plugin coding_on_gpus chose it",
        "{placed:#}"
    );
    // The other hub's plugin never answers: the built-in policy places the model (the Mac,
    // with the most room), within the deadline, and says why.
    assert_eq!(served(looping_addr, "chat"), "mac");
    assert!(
        looping_hub.wait_for_log("the fleet placement plugin failed", 10),
        "{}",
        looping_hub.log()
    );
    let metrics = get(looping_addr, "/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("porten_hub_plugin_fallbacks_total") && l.contains("timeout")),
        "{metrics}"
    );
    // Hubs side by side: each knows what the other placed, from the same reports.
    assert_eq!(served(looping_addr, "qwen-coder"), "gpu-1");
    assert_eq!(served(deciding_addr, "chat"), "mac");
    drop((gpu, mac));
}

#[test]
fn a_stream_whose_node_dies_midway_ends_with_an_error_event_and_the_hub_keeps_serving() {
    use std::io::BufReader;
    use support::http::{open, read_chunk, read_head};
    let (moto, estimate) = mirror_with_models(1);
    let (_hub, hub_addr) = start_hub(0, &[]);
    let mut node = start_node(
        "n0",
        &moto,
        &[hub_addr.port()],
        &budget_mb(estimate, 1.5),
        &[],
    );
    wait_for(hub_addr, 30, "the node", |s| live_nodes(s) == 1);
    assert_eq!(served(hub_addr, "m1"), "n0");
    // Greedy, the end-of-text tokens forbidden: the answer is still streaming when its node
    // dies (the same answer runs to about a thousand tokens when nothing breaks).
    let body = json!({"model": "m1", "stream": true, "max_tokens": 1900, "temperature": 0.0,
                      "logit_bias": {"256": -100, "257": -100, "258": -100},
                      "messages": [{"role": "user", "content": "hello"}]});
    let stream = open(
        hub_addr,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "x-porten-node" && v == "n0"));
    let first = read_chunk(&mut reader).expect("a first event");
    assert!(
        first.starts_with(b"data: {"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    node.server.kill();
    // The rest of the stream, to its clean end: the last event is an OpenAI error object, and
    // no `[DONE]` pretends the answer was whole.
    let mut rest = Vec::new();
    while let Some(chunk) = read_chunk(&mut reader) {
        rest.extend_from_slice(&chunk);
    }
    let rest = String::from_utf8_lossy(&rest);
    let events: Vec<&str> = rest
        .split("\n\n")
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let last: Value = serde_json::from_str(
        events
            .last()
            .and_then(|e| e.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("no event after the break: {rest}")),
    )
    .unwrap_or_else(|e| panic!("{e}: {rest}"));
    assert!(last["error"]["message"].is_string(), "{last}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    // The hub itself is unharmed: with its only node gone, it answers in the client's dialect.
    let after = post_json(
        hub_addr,
        "/v1/chat/completions",
        &json!({"model": "m1", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert!(
        [502, 503].contains(&after.status),
        "{} {}",
        after.status,
        after.text()
    );
    assert!(
        after.json()["error"]["message"].is_string(),
        "{}",
        after.text()
    );
}

#[test]
fn the_hub_cuts_a_half_sent_head_and_a_stalled_body_as_porten_serve_does() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[server.connections]\nhead_timeout_secs = 1\nbody_timeout_secs = 1\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let hub = Porten::launch_here(
        &["hub", "--listen", "127.0.0.1:0", "--config", &config],
        &[],
        &[],
        HUB_ANNOUNCE,
    );
    let addr = hub.addr;
    // A head that never ends is closed at the head timeout.
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the half-sent head was kept for {:?}",
        started.elapsed()
    );
    // A body that stalls is answered 408 in the client's dialect.
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled
        .write_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 200\r\n\r\n{\"model\":",
        )
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stalled);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.contains(" 408 "), "{status}");
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer);
    assert!(
        String::from_utf8_lossy(&answer).contains("request_timeout"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // And the hub still answers.
    assert_eq!(get(addr, "/health").status, 200);
}
