//! An eviction policy implemented by a component of the `eviction-policy` world, of either
//! version of `porten:policy`: 0.1.0 (`wit/`: candidates by name, answers by name) or 0.2.0
//! (`wit/v0.2`: model names sent once, candidates as parallel lists, answers by index). The
//! version is read off the component's exports.

use std::path::Path;

use porten_storage::{EvictionPolicy, EvictionRequest, ModelRef, PolicyFailure};

use crate::engine::{exported_version, Version};
use crate::instance::{CallFailure, Instance};
use crate::names::{named, Names};
use crate::placement::{now_ms, plugin_name};
use crate::versioned::Versioned;
use crate::{PluginEngine, Result};

mod v1 {
    wasmtime::component::bindgen!({ path: "../wit", world: "eviction-policy" });
}

mod v2 {
    wasmtime::component::bindgen!({ path: "../wit/v0.2", world: "eviction-policy" });
}

/// The `eviction-policy` plugin loaded from one file.
pub struct WasmEvictionPolicy {
    name: String,
    guest: Guest,
}

type Guest = Versioned<v1::EvictionPolicy, v2::EvictionPolicy, ModelRef>;

impl std::fmt::Debug for WasmEvictionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEvictionPolicy")
            .field("name", &self.name)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl WasmEvictionPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let world = "eviction-policy";
        let guest = match exported_version(&component, "eviction") {
            Some(Version::V0_2) => {
                let pre = engine.link(path, &component, world, v2::EvictionPolicyPre::new)?;
                Guest::v0_2(Instance::new(engine.clone(), move |store| {
                    pre.instantiate(store)
                }))
            }
            _ => {
                let pre = engine.link(path, &component, world, v1::EvictionPolicyPre::new)?;
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

impl EvictionPolicy for WasmEvictionPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose(&self, request: &EvictionRequest) -> Vec<ModelRef> {
        self.try_choose(request).unwrap_or_default()
    }

    fn try_choose(&self, request: &EvictionRequest) -> Result<Vec<ModelRef>, PolicyFailure> {
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
    instance: &Instance<v1::EvictionPolicy>,
    request: &EvictionRequest,
) -> Result<Vec<ModelRef>, CallFailure> {
    use v1::exports::porten::policy::eviction::{Candidate, Request};
    let request = Request {
        bytes_needed: request.bytes_needed,
        now_ms: now_ms(),
        candidates: request
            .candidates
            .iter()
            .map(|c| Candidate {
                model: c.model.to_string(),
                size_bytes: c.size_bytes,
                unique_bytes: c.unique_bytes,
                last_used_ms: c.last_used_ms,
                created_ms: c.created_ms,
                pinned: c.pinned,
                loaded: c.loaded,
            })
            .collect(),
    };
    let answer = instance.call(|store, policy| {
        policy
            .porten_policy_eviction()
            .call_choose_victims(store, &request)
    })?;
    answer
        .iter()
        .map(|name| {
            ModelRef::parse(name).map_err(|e| CallFailure {
                cause: "invalid_answer",
                detail: format!("`{name}` is not a model name: {e}"),
            })
        })
        .collect()
}

fn choose_v2(
    instance: &Instance<v2::EvictionPolicy>,
    names: &mut Names<ModelRef>,
    request: &EvictionRequest,
) -> Result<Vec<ModelRef>, CallFailure> {
    use v2::exports::porten::policy::eviction::{Candidates, Request};
    let n = request.candidates.len();
    let mut candidates = Candidates {
        model: Vec::with_capacity(n),
        size_bytes: Vec::with_capacity(n),
        unique_bytes: Vec::with_capacity(n),
        last_used_ms: Vec::with_capacity(n),
        created_ms: Vec::with_capacity(n),
        pinned: Vec::with_capacity(n),
        loaded: Vec::with_capacity(n),
    };
    for (at, c) in request.candidates.iter().enumerate() {
        candidates.model.push(names.index_at(at, &c.model));
        candidates.size_bytes.push(c.size_bytes);
        candidates.unique_bytes.push(c.unique_bytes);
        candidates.last_used_ms.push(c.last_used_ms);
        candidates.created_ms.push(c.created_ms);
        candidates.pinned.push(c.pinned);
        candidates.loaded.push(c.loaded);
    }
    let request = Request {
        bytes_needed: request.bytes_needed,
        now_ms: now_ms(),
        candidates,
    };
    let victims = names.call(
        instance,
        |store, policy, list| {
            let list: Vec<String> = list.iter().map(ModelRef::to_string).collect();
            policy
                .porten_policy_eviction()
                .call_set_models(store, &list)
        },
        |store, policy| {
            policy
                .porten_policy_eviction()
                .call_choose_victims(store, &request)
        },
    )?;
    Ok(named(names, &victims)?.into_iter().cloned().collect())
}
