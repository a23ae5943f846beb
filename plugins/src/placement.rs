//! A placement policy implemented by a component of the `placement-policy` world, of either
//! version of `porten:policy`: 0.1.0 (`wit/`: candidates by name, answers by name) or 0.2.0
//! (`wit/v0.2`: model names sent once, candidates as parallel lists, answers by index). The
//! version is read off the component's exports.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use porten_proxy::residency::{PlacementPolicy, PlacementRequest, PolicyFailure};

use crate::engine::{exported_version, Version};
use crate::instance::{CallFailure, Instance};
use crate::names::{named, Names};
use crate::versioned::Versioned;
use crate::{PluginEngine, Result};

mod v1 {
    wasmtime::component::bindgen!({ path: "../wit", world: "placement-policy" });
}

mod v2 {
    wasmtime::component::bindgen!({ path: "../wit/v0.2", world: "placement-policy" });
}

/// The `placement-policy` plugin loaded from one file.
pub struct WasmPlacementPolicy {
    name: String,
    guest: Guest,
}

type Guest = Versioned<v1::PlacementPolicy, v2::PlacementPolicy, String>;

impl WasmPlacementPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let world = "placement-policy";
        let guest = match exported_version(&component, "placement") {
            Some(Version::V0_2) => {
                let pre = engine.link(path, &component, world, v2::PlacementPolicyPre::new)?;
                Guest::v0_2(Instance::new(engine.clone(), move |store| {
                    pre.instantiate(store)
                }))
            }
            _ => {
                let pre = engine.link(path, &component, world, v1::PlacementPolicyPre::new)?;
                Guest::V0_1(Instance::new(engine.clone(), move |store| {
                    pre.instantiate(store)
                }))
            }
        };
        Ok(Self {
            name: plugin_name(path),
            guest,
        })
    }

    /// Which `porten:policy` version the component implements: `0.1.0` or `0.2.0`.
    pub fn version(&self) -> &'static str {
        self.guest.version()
    }
}

impl PlacementPolicy for WasmPlacementPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose_victims(&self, request: &PlacementRequest) -> Vec<String> {
        self.try_choose_victims(request).unwrap_or_default()
    }

    fn try_choose_victims(&self, request: &PlacementRequest) -> Result<Vec<String>, PolicyFailure> {
        let answer = self.guest.decide(
            |instance| choose_v1(instance, request),
            |instance, names| choose_v2(instance, names, request),
        );
        answer.map_err(|f| PolicyFailure {
            cause: f.cause,
            detail: f.detail,
        })
    }
}

fn choose_v1(
    instance: &Instance<v1::PlacementPolicy>,
    request: &PlacementRequest,
) -> Result<Vec<String>, CallFailure> {
    use v1::exports::porten::policy::placement::{Candidate, Request};
    let request = Request {
        model: request.model.clone(),
        need_bytes: request.need,
        budget_bytes: request.budget,
        free_bytes: request.free,
        shortfall_bytes: request.shortfall(),
        now_ms: now_ms(),
        candidates: request
            .candidates
            .iter()
            .map(|c| Candidate {
                model: c.model.clone(),
                bytes: c.bytes,
                idle_ms: c.idle_for.as_millis() as u64,
                requests: c.requests,
            })
            .collect(),
    };
    instance.call(|store, policy| {
        policy
            .porten_policy_placement()
            .call_choose_victims(store, &request)
    })
}

fn choose_v2(
    instance: &Instance<v2::PlacementPolicy>,
    names: &mut Names<String>,
    request: &PlacementRequest,
) -> Result<Vec<String>, CallFailure> {
    use v2::exports::porten::policy::placement::{Candidates, Request};
    let n = request.candidates.len();
    let mut candidates = Candidates {
        model: Vec::with_capacity(n),
        bytes: Vec::with_capacity(n),
        idle_ms: Vec::with_capacity(n),
        requests: Vec::with_capacity(n),
    };
    for (at, c) in request.candidates.iter().enumerate() {
        candidates.model.push(names.index_at(at, c.model.as_str()));
        candidates.bytes.push(c.bytes);
        candidates.idle_ms.push(c.idle_for.as_millis() as u64);
        candidates.requests.push(c.requests);
    }
    let request = Request {
        model: names.index_of(request.model.as_str()),
        need_bytes: request.need,
        budget_bytes: request.budget,
        free_bytes: request.free,
        shortfall_bytes: request.shortfall(),
        now_ms: now_ms(),
        candidates,
    };
    let victims = names.call(
        instance,
        |store, policy, list| {
            policy
                .porten_policy_placement()
                .call_set_models(store, list)
        },
        |store, policy| {
            policy
                .porten_policy_placement()
                .call_choose_victims(store, &request)
        },
    )?;
    Ok(named(names, &victims)?.into_iter().cloned().collect())
}

/// A plugin's name in logs and metrics: its file name without `.wasm`.
pub(crate) fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
