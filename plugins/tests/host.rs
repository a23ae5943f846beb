//! The host against real components built from source (`scripts/build-plugins.sh`): the
//! examples change decisions against the built-in policies, and each hostile plugin is
//! contained with the right cause, after which the plugin answers (or fails) afresh.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use porten_plugins::{Error, Limits, PluginEngine, WasmEvictionPolicy, WasmPlacementPolicy};
use porten_proxy::residency::policy::checked_victims;
use porten_proxy::residency::{
    LeastRecentlyUsed, PlacementCandidate, PlacementPolicy, PlacementRequest,
};
use porten_storage::{EvictionCandidate, EvictionPolicy, EvictionRequest, ModelRef};

/// The folder of built plugins, built once per test process.
fn plugins() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new("bash")
            .arg(root.join("scripts/build-plugins.sh"))
            .output()
            .expect("run scripts/build-plugins.sh");
        assert!(
            out.status.success(),
            "building the plugins failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

fn plugin(name: &str) -> PathBuf {
    plugins().join(format!("{name}.wasm"))
}

fn engine() -> PluginEngine {
    PluginEngine::new(
        Limits {
            deadline: Duration::from_millis(20),
            memory_bytes: 16 << 20,
        },
        None,
    )
    .unwrap()
}

fn placement_request() -> PlacementRequest {
    let candidate = |model: &str, idle_s: u64| PlacementCandidate {
        model: model.into(),
        bytes: 100,
        idle_for: Duration::from_secs(idle_s),
        requests: 3,
    };
    PlacementRequest {
        model: "big".into(),
        need: 150,
        budget: 300,
        free: 100,
        // `tiny` is a favourite and the longest idle: least-recently-used picks it.
        candidates: vec![candidate("tiny", 600), candidate("other", 60)],
    }
}

fn eviction_request() -> EvictionRequest {
    let day = 86_400_000;
    let candidate = |name: &str, size: u64, created: u64, used: u64| EvictionCandidate {
        model: ModelRef::parse(name).unwrap(),
        size_bytes: size,
        unique_bytes: size,
        last_used_ms: used,
        created_ms: created,
        pinned: false,
        loaded: false,
    };
    EvictionRequest {
        bytes_needed: 1,
        candidates: vec![
            // Small, in use for 30 days, last used 2 days ago: LRU's victim.
            candidate("small:latest", 100 << 20, 100 * day, 128 * day),
            // Large, imported and used yesterday only.
            candidate("large:latest", 20 << 30, 129 * day, 129 * day),
        ],
    }
}

#[test]
fn the_pinned_favourites_example_keeps_a_favourite_that_lru_would_unload() {
    let request = placement_request();
    assert_eq!(LeastRecentlyUsed.choose_victims(&request), ["tiny"]);
    let policy = WasmPlacementPolicy::load(&engine(), &plugin("pinned_favourites")).unwrap();
    assert_eq!(policy.try_choose_victims(&request).unwrap(), ["other"]);
    assert_eq!(checked_victims(&policy, &request).unwrap(), ["other"]);
}

#[test]
fn the_gdsf_example_evicts_the_large_model_that_lru_would_keep() {
    let request = eviction_request();
    let lru = porten_storage::LeastRecentlyUsed.choose(&request);
    assert_eq!(lru[0].to_string(), "small:latest");
    let policy = WasmEvictionPolicy::load(&engine(), &plugin("gdsf_eviction")).unwrap();
    let answer = policy.try_choose(&request).unwrap();
    assert_eq!(answer[0].to_string(), "large:latest");
}

#[test]
fn components_of_both_versions_load_and_say_which_they_are() {
    let engine = engine();
    let version = |name: &str| {
        let path = plugin(name);
        WasmPlacementPolicy::load(&engine, &path)
            .map(|p| p.version())
            .or_else(|_| WasmEvictionPolicy::load(&engine, &path).map(|p| p.version()))
            .unwrap()
    };
    // The examples are 0.2.0; the C example and most hostile plugins stay 0.1.0.
    assert_eq!(version("pinned_favourites"), "0.2.0");
    assert_eq!(version("gdsf_eviction"), "0.2.0");
    assert_eq!(version("largest_first_c"), "0.1.0");
    assert_eq!(version("loop_forever"), "0.1.0");
    let largest_first = WasmEvictionPolicy::load(&engine, &plugin("largest_first_c")).unwrap();
    assert_eq!(
        largest_first.try_choose(&eviction_request()).unwrap()[0].to_string(),
        "large:latest"
    );
}

#[test]
fn a_model_named_for_the_first_time_is_sent_to_the_plugin_before_it_decides() {
    let policy = WasmPlacementPolicy::load(&engine(), &plugin("pinned_favourites")).unwrap();
    assert_eq!(
        policy.try_choose_victims(&placement_request()).unwrap(),
        ["other"]
    );
    // `smollm2`, a favourite, is new: the plugin must know its name to keep it.
    let mut request = placement_request();
    request.candidates[0].model = "smollm2".into();
    request.candidates.push(PlacementCandidate {
        model: "third".into(),
        bytes: 100,
        idle_for: Duration::from_secs(1),
        requests: 0,
    });
    assert_eq!(
        policy.try_choose_victims(&request).unwrap(),
        ["other"],
        "the longest idle non-favourite goes first"
    );
    request.need = 250;
    assert_eq!(
        policy.try_choose_victims(&request).unwrap(),
        ["other", "third"]
    );
}

#[test]
fn an_index_never_sent_is_refused_and_a_fresh_instance_is_given_the_names_again() {
    let policy = WasmEvictionPolicy::load(&engine(), &plugin("bad_index")).unwrap();
    let refused = policy.try_choose(&eviction_request()).unwrap_err();
    assert_eq!(refused.cause, "invalid_answer", "{}", refused.detail);
    assert!(refused.detail.contains("4294967295"), "{}", refused.detail);
    // Asked to free nothing, it traps; its instance is discarded.
    let mut nothing = eviction_request();
    nothing.bytes_needed = 0;
    let trapped = policy.try_choose(&nothing).unwrap_err();
    assert_eq!(trapped.cause, "trap", "{}", trapped.detail);
    // The next instance traps too unless it is sent the names before deciding.
    let again = policy.try_choose(&eviction_request()).unwrap_err();
    assert_eq!(again.cause, "invalid_answer", "{}", again.detail);
}

#[test]
fn a_plugin_that_loops_is_stopped_at_its_deadline_every_time() {
    let policy = WasmPlacementPolicy::load(&engine(), &plugin("loop_forever")).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let failure = policy.try_choose_victims(&placement_request()).unwrap_err();
        assert_eq!(failure.cause, "timeout", "{}", failure.detail);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // The scheduler's view: the built-in policy decides.
    assert_eq!(
        checked_victims(&policy, &placement_request()).unwrap(),
        ["tiny"]
    );
}

#[test]
fn a_plugin_that_allocates_without_end_hits_its_memory_limit() {
    let policy = WasmEvictionPolicy::load(&engine(), &plugin("allocate_forever")).unwrap();
    let failure = policy.try_choose(&eviction_request()).unwrap_err();
    assert_eq!(failure.cause, "memory", "{}", failure.detail);
}

#[test]
fn a_plugin_that_traps_fails_with_the_trap_and_answers_afresh_next_time() {
    let policy = WasmEvictionPolicy::load(&engine(), &plugin("trap")).unwrap();
    for _ in 0..2 {
        let failure = policy.try_choose(&eviction_request()).unwrap_err();
        assert_eq!(failure.cause, "trap", "{}", failure.detail);
    }
}

#[test]
fn a_nonsense_answer_reaches_the_caller_to_be_refused() {
    let policy = WasmEvictionPolicy::load(&engine(), &plugin("bad_answer")).unwrap();
    let answer = policy.try_choose(&eviction_request()).unwrap();
    assert_eq!(answer[0].to_string(), "no-such-model:latest");
}

#[test]
fn a_component_of_the_other_world_is_refused_at_load() {
    let error = WasmPlacementPolicy::load(&engine(), &plugin("gdsf_eviction"))
        .err()
        .unwrap();
    assert!(matches!(error, Error::WrongWorld { .. }), "{error}");
    let error = WasmEvictionPolicy::load(&engine(), &plugin("pinned_favourites"))
        .err()
        .unwrap();
    assert!(matches!(error, Error::WrongWorld { .. }), "{error}");
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"not wasm").unwrap();
    let error = WasmEvictionPolicy::load(&engine(), junk.path())
        .err()
        .unwrap();
    assert!(matches!(error, Error::Invalid { .. }), "{error}");
}

#[test]
fn compiled_components_are_cached_by_content_and_engine() {
    let cache = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(Limits::default(), Some(cache.path().to_path_buf())).unwrap();
    WasmEvictionPolicy::load(&engine, &plugin("gdsf_eviction")).unwrap();
    let artifacts: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert_eq!(artifacts.len(), 1);
    let name = artifacts[0].file_name().into_string().unwrap();
    let hash = blake3::hash(&std::fs::read(plugin("gdsf_eviction")).unwrap());
    assert!(name.starts_with(&hash.to_hex().to_string()), "{name}");
    // Loaded again from the artifact: it still decides.
    let policy = WasmEvictionPolicy::load(&engine, &plugin("gdsf_eviction")).unwrap();
    assert_eq!(
        policy.try_choose(&eviction_request()).unwrap()[0].to_string(),
        "large:latest"
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

/// A fleet of `gpu-1`, `gpu-2` and `mac`, empty, `mac` with the most room.
fn fleet() -> Vec<porten_hub::NodeFacts> {
    [("gpu-1", 24u64), ("gpu-2", 24), ("mac", 64)]
        .iter()
        .map(|(name, gib)| porten_hub::NodeFacts {
            name: name.to_string(),
            budget_bytes: gib << 30,
            reserved_bytes: 0,
            models: Vec::new(),
            store: Vec::new(),
            catalog: Vec::new(),
        })
        .collect()
}

fn fleet_choice(
    policy: &dyn porten_hub::FleetPolicy,
    fleet: &[porten_hub::NodeFacts],
    model: &str,
) -> Result<Option<String>, porten_hub::PolicyFailure> {
    let candidates = porten_hub::policy::candidates(fleet, model, 8 << 30, 0);
    let chosen = policy.choose_node(fleet, model, 8 << 30, &candidates)?;
    Ok(chosen.map(|i| fleet[i].name.clone()))
}

#[test]
fn the_coding_on_gpus_example_sends_coding_models_to_the_gpu_boxes_and_the_rest_elsewhere() {
    let policy =
        porten_plugins::WasmFleetPolicy::load(&engine(), &plugin("coding_on_gpus")).unwrap();
    let mut fleet = fleet();
    // The built-in policy spreads: the Mac has the most room.
    let builtin = porten_hub::route(&fleet, "qwen2.5-coder-7b", 8 << 30, &Default::default());
    assert!(
        matches!(builtin, porten_hub::Route::Place(ref p) if p.node == 2),
        "{builtin:?}"
    );
    assert_eq!(
        fleet_choice(&policy, &fleet, "qwen2.5-coder-7b")
            .unwrap()
            .as_deref(),
        Some("gpu-1")
    );
    assert_eq!(
        fleet_choice(&policy, &fleet, "llama3.2")
            .unwrap()
            .as_deref(),
        Some("mac")
    );
    // A node that joins later gets its own index; the names the plugin knows still hold.
    fleet.insert(
        0,
        porten_hub::NodeFacts {
            name: "gpu-0".into(),
            budget_bytes: 80 << 30,
            ..fleet[0].clone()
        },
    );
    assert_eq!(
        fleet_choice(&policy, &fleet, "codestral")
            .unwrap()
            .as_deref(),
        Some("gpu-0")
    );
    // With the Mac full, a non-coding model still lands somewhere.
    fleet.retain(|n| n.name != "mac");
    assert_eq!(
        fleet_choice(&policy, &fleet, "llama3.2")
            .unwrap()
            .as_deref(),
        Some("gpu-0")
    );
}

#[test]
fn a_fleet_plugin_that_loops_is_stopped_at_its_deadline_and_answers_afresh() {
    let looping =
        porten_plugins::WasmFleetPolicy::load(&engine(), &plugin("fleet_loop_forever")).unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let failure = fleet_choice(&looping, &fleet(), "m").unwrap_err();
        assert_eq!(failure.cause, "timeout", "{failure:?}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_component_of_an_older_world_is_not_a_fleet_plugin() {
    let error = porten_plugins::WasmFleetPolicy::load(&engine(), &plugin("pinned_favourites"))
        .err()
        .expect("refused");
    assert!(
        matches!(
            error,
            Error::WrongWorld {
                world: "fleet-placement-policy",
                ..
            }
        ),
        "{error}"
    );
}
