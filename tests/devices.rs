//! Device memory as the budget, end to end against the real binary: on this CPU machine the
//! budget comes from system memory and the log says NVML is absent; with devices scripted in
//! a file (`PORTEN_MEMORY_PROBE=file:PATH`, what a GPU's probe would read), each device gets a
//! share of its free memory, models spread over the devices, and another process taking
//! memory shrinks a device's limit: its idle model is unloaded, the log says why, and the
//! model loads on the other device when asked for again.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::{get, post_json};
use support::server::Porten;

const MIB: u64 = 1 << 20;

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(dir: &Path, models: &[&str]) -> String {
    let mut text = String::from("[memory]\nkeep_alive = -1\n");
    for id in models {
        let path = dir.join(id);
        support::fixtures::write_tiny_chat_model(&path);
        text.push_str(&format!(
            "[[models]]\nid = \"{id}\"\npath = \"{}\"\ncontext_length = 512\nmax_concurrency = 1\n",
            path.display()
        ));
    }
    let file = dir.join("porten.toml");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

fn chat(server: &Porten, model: &str) -> support::http::Answer {
    post_json(
        server.addr,
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": 2,
                "messages": [{"role": "user", "content": "hello"}]}),
        &[],
    )
}

fn model<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap()
}

#[test]
fn on_a_cpu_machine_the_budget_is_system_memory_and_the_log_says_no_gpu_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &["tiny"]);
    let server = Porten::start(&["--config", &config]);
    assert!(
        server.wait_for_log("NVML is not available", 5),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("libnvidia-ml.so.1"),
        "{}",
        server.log()
    );
    let status = get(server.addr, "/admin/status").json();
    let device = &status["devices"][0];
    assert_eq!(device["name"], "system memory", "{status}");
    assert_eq!(status["gpus_seen"], json!([]));
    let free = device["free_at_start_bytes"].as_u64().unwrap();
    assert_eq!(device["budget_bytes"].as_u64().unwrap(), free / 100 * 90);
    assert!(
        device["source"].as_str().unwrap().starts_with("90% of the"),
        "{device}"
    );
    // Loads are measured on the CPU as before: resident memory.
    assert_eq!(chat(&server, "tiny").status, 200);
    let status = get(server.addr, "/admin/status").json();
    assert!(model(&status, "tiny")["measured_bytes"].as_u64().is_some());
}

fn devices(file: &Path, devices: &[(u64, u64, Option<u64>)]) {
    let list: Vec<Value> = devices
        .iter()
        .enumerate()
        .map(|(i, (total, free, ours))| {
            json!({"name": format!("GPU {i}"), "total": total * MIB, "free": free * MIB,
                   "used_by_us": ours.map(|o| o * MIB)})
        })
        .collect();
    // Written whole, then renamed: the server never reads half a file.
    let partial = file.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec(&list).unwrap()).unwrap();
    std::fs::rename(&partial, file).unwrap();
}

#[test]
fn scripted_devices_get_budgets_and_a_device_others_fill_sheds_its_idle_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &["a", "b"]);
    let file = dir.path().join("devices.json");
    devices(&file, &[(1000, 1000, Some(0)), (1000, 1000, Some(0))]);
    let probe = format!("file:{}", file.display());
    let server = Porten::start_with_env(&["--config", &config], &[("PORTEN_MEMORY_PROBE", &probe)]);
    let status = get(server.addr, "/admin/status").json();
    let budgets: Vec<u64> = status["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["budget_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(budgets, [900 * MIB, 900 * MIB], "{status}");
    assert!(status["devices"][1]["source"]
        .as_str()
        .unwrap()
        .contains(&probe));

    // a goes to the first device, b to the one with more room left.
    assert_eq!(chat(&server, "a").status, 200);
    assert_eq!(chat(&server, "b").status, 200);
    let status = get(server.addr, "/admin/status").json();
    assert_eq!(model(&status, "a")["device"], 0, "{status}");
    assert_eq!(model(&status, "b")["device"], 1, "{status}");

    // Another process fills device 1: porten holds only 1 MiB there by the device's account,
    // so its limit drops below b's reservation and idle b is unloaded.
    devices(&file, &[(1000, 1000, Some(0)), (1000, 0, Some(1))]);
    wait_until("device 1's limit to drop", 10, || {
        let status = get(server.addr, "/admin/status").json();
        status["devices"][1]["limit_bytes"] == json!(MIB)
            && model(&status, "b")["state"] == "available"
    });
    assert!(
        server.wait_for_log("other processes hold memory porten counted on", 5),
        "{}",
        server.log()
    );
    let events = get(server.addr, "/admin/events").json()["events"]
        .as_array()
        .unwrap()
        .clone();
    assert!(events
        .iter()
        .any(|e| e["event"] == "limit_changed" && e["device"] == 1 && e["to"] == json!(MIB)));
    assert!(events
        .iter()
        .any(|e| e["event"] == "unloaded" && e["model"] == "b" && e["reason"] == "budget_shrunk"));

    // Asked for again, b loads where there is room; nothing was loaded above a limit.
    assert_eq!(chat(&server, "b").status, 200);
    let status = get(server.addr, "/admin/status").json();
    assert_eq!(model(&status, "b")["device"], 0, "{status}");
    assert_eq!(status["devices"][1]["reserved_bytes"], 0);

    // The memory comes back: so does the budget.
    devices(&file, &[(1000, 1000, Some(0)), (1000, 1000, Some(0))]);
    wait_until("device 1's budget to come back", 10, || {
        get(server.addr, "/admin/status").json()["devices"][1]["limit_bytes"] == json!(900 * MIB)
    });
    assert!(server.wait_for_log("the device has its whole budget again", 5));
}

#[test]
fn a_probe_file_that_is_not_there_is_a_clear_warning_and_no_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &["tiny"]);
    let probe = format!("file:{}", dir.path().join("missing.json").display());
    let server = Porten::start_with_env(&["--config", &config], &[("PORTEN_MEMORY_PROBE", &probe)]);
    assert!(server.wait_for_log("the memory probe cannot read its devices", 5));
    let status = get(server.addr, "/admin/status").json();
    assert_eq!(
        status["devices"][0]["budget_bytes"],
        Value::Null,
        "{status}"
    );
    assert!(status["devices"][0]["source"]
        .as_str()
        .unwrap()
        .contains("no limit"));
    assert_eq!(chat(&server, "tiny").status, 200);
}

/// `porten fit --tiers`: the guide's table, from the binary, for a hypothetical 70B and a
/// store model.
#[test]
fn fit_tiers_gives_the_guides_column_and_where_a_model_fits() {
    let home = tempfile::tempdir().unwrap();
    let porten = |args: &[&str]| support::cli::ok(home.path(), args);
    let report: Value =
        serde_json::from_str(&porten(&["fit", "--tiers", "--params", "70B", "--json"])).unwrap();
    let tiers = report["tiers"].as_array().unwrap();
    let column: Vec<&str> = tiers
        .iter()
        .map(|t| t["runs_well_at_q4"].as_str().unwrap())
        .collect();
    assert_eq!(
        column,
        ["7-8B", "14B", "32B", "32B", "70B", "80B MoE", "120B MoE", "235B MoE"]
    );
    let fits: Vec<bool> = tiers.iter().map(|t| t["fits"].as_bool().unwrap()).collect();
    assert_eq!(fits, [false, false, false, false, true, true, true, true]);
    assert_eq!(tiers[4]["tier"], "48 GB");
    assert!(
        tiers[7]["longest_context"].as_u64().unwrap()
            > tiers[4]["longest_context"].as_u64().unwrap()
    );

    let smollm2 = support::smollm2();
    porten(&["import", smollm2.to_str().unwrap(), "--name", "smollm2"]);
    let table = porten(&["fit", "--tiers", "smollm2"]);
    assert!(
        table.contains("8-12 GB") && table.contains("RTX 4090"),
        "{table}"
    );
    // SmolLM2 was trained for 8192 tokens: that is the longest context anywhere.
    let first = table.lines().find(|l| l.starts_with("8-12 GB")).unwrap();
    assert!(first.contains(" yes ") && first.contains("8192"), "{first}");
    let out = support::cli::porten(
        home.path(),
        &["fit", "--tiers", "smollm2", "--params", "7B"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tiers sizes one model"));
}
