//! A fleet placement policy implemented by a component of the `fleet-placement-policy` world
//! (`porten:policy@0.2.0`, `wit/v0.2`). Node names cross the boundary once: the plugin gets
//! the list by `set-nodes` and each decision names nodes by index in it, with the candidates'
//! facts as parallel lists.

use std::path::Path;
use std::sync::Mutex;

use porten_hub::{Candidate, FleetPolicy, NodeFacts, PolicyFailure};

use crate::instance::Instance;
use crate::names::Names;
use crate::placement::{now_ms, plugin_name};
use crate::{PluginEngine, Result};

mod bindings {
    wasmtime::component::bindgen!({ path: "../wit/v0.2", world: "fleet-placement-policy" });
}

use bindings::exports::porten::policy::fleet_placement::{Nodes, Request};

/// The `fleet-placement-policy` plugin loaded from one file.
pub struct WasmFleetPolicy {
    name: String,
    instance: Instance<bindings::FleetPlacementPolicy>,
    /// Every node name the hub has seen, by the index the plugin knows it by.
    names: Mutex<Names<String>>,
}

impl WasmFleetPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let pre = engine.link(
            path,
            &component,
            "fleet-placement-policy",
            bindings::FleetPlacementPolicyPre::new,
        )?;
        Ok(Self {
            name: plugin_name(path),
            instance: Instance::new(engine.clone(), move |store| pre.instantiate(store)),
            names: Mutex::default(),
        })
    }
}

impl FleetPolicy for WasmFleetPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose_node(
        &self,
        fleet: &[NodeFacts],
        model: &str,
        estimate: u64,
        candidates: &[Candidate],
    ) -> std::result::Result<Option<usize>, PolicyFailure> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let n = candidates.len();
        let mut nodes = Nodes {
            index: Vec::with_capacity(n),
            budget_bytes: Vec::with_capacity(n),
            free_bytes: Vec::with_capacity(n),
            reclaimable_bytes: Vec::with_capacity(n),
            busy: Vec::with_capacity(n),
            has_weights: Vec::with_capacity(n),
        };
        for (at, c) in candidates.iter().enumerate() {
            nodes
                .index
                .push(names.index_at(at, fleet[c.node].name.as_str()));
            nodes.budget_bytes.push(c.budget_bytes);
            nodes.free_bytes.push(c.free_bytes);
            nodes.reclaimable_bytes.push(c.reclaimable_bytes);
            nodes.busy.push(c.busy);
            nodes.has_weights.push(c.has_weights);
        }
        let request = Request {
            model: model.to_string(),
            estimate_bytes: estimate,
            now_ms: now_ms(),
            nodes,
        };
        let answer = names
            .call(
                &self.instance,
                |store, policy, list| {
                    policy
                        .porten_policy_fleet_placement()
                        .call_set_nodes(store, list)
                },
                |store, policy| {
                    policy
                        .porten_policy_fleet_placement()
                        .call_choose_node(store, &request)
                },
            )
            .map_err(|f| PolicyFailure {
                cause: f.cause,
                detail: f.detail,
            })?;
        let Some(index) = answer else {
            return Ok(None);
        };
        // The answer must be one of the candidates: find its position among those sent.
        let chosen = request
            .nodes
            .index
            .iter()
            .position(|&i| i == index)
            .map(|at| candidates[at].node);
        chosen.map(Some).ok_or_else(|| PolicyFailure {
            cause: "invalid_answer",
            detail: format!("it chose node index {index}, which is not a candidate"),
        })
    }
}
