//! An eviction policy implemented by a component of the `eviction-policy` world.

use std::path::Path;

use porten_storage::{EvictionPolicy, EvictionRequest, ModelRef, PolicyFailure};
use wasmtime::component::Linker;

use crate::instance::{HostState, Instance};
use crate::placement::{now_ms, plugin_name};
use crate::{Error, PluginEngine, Result};

mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "eviction-policy" });
}

use bindings::exports::porten::policy::eviction::{Candidate, Request};

/// The `eviction-policy` plugin loaded from one file.
pub struct WasmEvictionPolicy {
    name: String,
    instance: Instance<bindings::EvictionPolicy>,
}

impl std::fmt::Debug for WasmEvictionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEvictionPolicy")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WasmEvictionPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let linker = Linker::<HostState>::new(&engine.engine);
        let wrong = |e: wasmtime::Error| Error::WrongWorld {
            path: path.to_path_buf(),
            world: "eviction-policy",
            reason: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = bindings::EvictionPolicyPre::new(pre).map_err(wrong)?;
        Ok(Self {
            name: plugin_name(path),
            instance: Instance::new(engine.clone(), move |store| pre.instantiate(store)),
        })
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
        let failure = |cause, detail| PolicyFailure { cause, detail };
        let answer = self
            .instance
            .call(|store, policy| {
                policy
                    .porten_policy_eviction()
                    .call_choose_victims(store, &request)
            })
            .map_err(|f| failure(f.cause, f.detail))?;
        answer
            .iter()
            .map(|name| {
                ModelRef::parse(name).map_err(|e| {
                    failure(
                        "invalid_answer",
                        format!("`{name}` is not a model name: {e}"),
                    )
                })
            })
            .collect()
    }
}
