//! A placement policy implemented by a component of the `placement-policy` world.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use porten_proxy::residency::{PlacementPolicy, PlacementRequest, PolicyFailure};
use wasmtime::component::Linker;

use crate::instance::{HostState, Instance};
use crate::{Error, PluginEngine, Result};

mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "placement-policy" });
}

use bindings::exports::porten::policy::placement::{Candidate, Request};

/// The `placement-policy` plugin loaded from one file.
pub struct WasmPlacementPolicy {
    name: String,
    instance: Instance<bindings::PlacementPolicy>,
}

impl WasmPlacementPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let linker = Linker::<HostState>::new(&engine.engine);
        let wrong = |e: wasmtime::Error| Error::WrongWorld {
            path: path.to_path_buf(),
            world: "placement-policy",
            reason: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = bindings::PlacementPolicyPre::new(pre).map_err(wrong)?;
        Ok(Self {
            name: plugin_name(path),
            instance: Instance::new(engine.clone(), move |store| pre.instantiate(store)),
        })
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
        self.instance
            .call(|store, policy| {
                policy
                    .porten_policy_placement()
                    .call_choose_victims(store, &request)
            })
            .map_err(|f| PolicyFailure {
                cause: f.cause,
                detail: f.detail,
            })
    }
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
