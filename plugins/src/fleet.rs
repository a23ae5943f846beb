//! A fleet placement policy implemented by a component of the `fleet-placement-policy` world
//! (`porten:policy@0.2.0`, `wit/fleet`). Node names cross the boundary once: the plugin gets
//! the list by `set-nodes` and each decision names nodes by index in it. The list only grows
//! while the fleet does (a node that leaves keeps its index), and is sent again whole to an
//! instance made afresh after a failure.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use porten_hub::{Candidate, FleetPolicy, NodeFacts, PolicyFailure};
use wasmtime::component::Linker;

use crate::instance::{HostState, Instance};
use crate::placement::{now_ms, plugin_name};
use crate::{Error, PluginEngine, Result};

mod bindings {
    wasmtime::component::bindgen!({ path: "../wit/fleet", world: "fleet-placement-policy" });
}

use bindings::exports::porten::policy::fleet_placement::{Node, Request};

/// The `fleet-placement-policy` plugin loaded from one file.
pub struct WasmFleetPolicy {
    name: String,
    instance: Instance<bindings::FleetPlacementPolicy>,
    /// Every node name the hub has seen, by the index the plugin knows it by.
    names: Mutex<Names>,
}

/// The node names sent to the plugin, with their indices looked up by name.
#[derive(Default)]
struct Names {
    list: Vec<String>,
    index: HashMap<String, u32>,
    /// Whether the current instance has the whole list.
    sent: bool,
}

impl Names {
    fn index_of(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(name.to_string());
        self.index.insert(name.to_string(), i);
        self.sent = false;
        i
    }
}

impl WasmFleetPolicy {
    /// Loads, compiles (or finds compiled) and links the component at `path`. A component of
    /// another world, or one that imports anything, is refused here.
    pub fn load(engine: &PluginEngine, path: &Path) -> Result<Self> {
        let component = engine.component(path)?;
        let linker = Linker::<HostState>::new(&engine.engine);
        let wrong = |e: wasmtime::Error| Error::WrongWorld {
            path: path.to_path_buf(),
            world: "fleet-placement-policy",
            reason: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(wrong)?;
        let pre = bindings::FleetPlacementPolicyPre::new(pre).map_err(wrong)?;
        Ok(Self {
            name: plugin_name(path),
            instance: Instance::new(engine.clone(), move |store| pre.instantiate(store)),
            names: Mutex::new(Names::default()),
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
        let nodes: Vec<Node> = candidates
            .iter()
            .map(|c| Node {
                index: names.index_of(&fleet[c.node].name),
                budget_bytes: c.budget_bytes,
                free_bytes: c.free_bytes,
                reclaimable_bytes: c.reclaimable_bytes,
                has_weights: c.has_weights,
                busy: c.busy,
            })
            .collect();
        let request = Request {
            model: model.to_string(),
            estimate_bytes: estimate,
            now_ms: now_ms(),
            nodes,
        };
        let send_names = !names.sent;
        let list = &names.list;
        let answer = self.instance.call(|store, policy| {
            let guest = policy.porten_policy_fleet_placement();
            if send_names {
                guest.call_set_nodes(&mut *store, list)?;
            }
            guest.call_choose_node(&mut *store, &request)
        });
        let answer = match answer {
            Ok(answer) => {
                names.sent = true;
                answer
            }
            Err(f) => {
                // The instance is gone; the next one gets the names again.
                names.sent = false;
                return Err(PolicyFailure {
                    cause: f.cause,
                    detail: f.detail,
                });
            }
        };
        let Some(index) = answer else {
            return Ok(None);
        };
        let chosen = names.list.get(index as usize).and_then(|name| {
            candidates
                .iter()
                .find(|c| &fleet[c.node].name == name)
                .map(|c| c.node)
        });
        chosen.map(Some).ok_or_else(|| PolicyFailure {
            cause: "invalid_answer",
            detail: format!("it chose node index {index}, which is not a candidate"),
        })
    }
}
