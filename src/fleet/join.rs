//! A node's side of the fleet (`porten serve --hub URL`): every second it tells the hub what
//! it has (its budget, what is reserved, each loaded or loading model with its queue, the
//! models it can load with their estimates, the weights in its store) and where it listens.
//! The hub keeps nothing else, so a restarted hub knows the fleet again a second later.

use std::sync::Arc;
use std::time::Duration;

use porten_hub::{ModelFacts, ModelState, NodeFacts, Offer};
use porten_proxy::models::ModelRegistry;
use porten_storage::{Store, DEFAULT_TAG};
use serde::{Deserialize, Serialize};

use super::token;
use crate::config::FleetConfig;

/// What a node sends to `POST /hub/nodes/{name}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// Its facts.
    pub facts: NodeFacts,
    /// The port it serves on: the hub reaches it there, at the address the report came from,
    /// unless `address` says otherwise.
    pub port: u16,
    /// Where the hub reaches it, when configured (`[fleet] node_address`).
    pub address: Option<String>,
}

/// Reports to each hub (`[fleet] hub`, comma-separated for hubs side by side) every second,
/// for the life of the process. The facts are gathered once per second for all of them.
pub fn spawn(fleet: &FleetConfig, models: Arc<ModelRegistry>, store: Arc<Store>, port: u16) {
    let hubs: Vec<String> = fleet.hubs().map(str::to_string).collect();
    if hubs.is_empty() {
        return;
    }
    let name = fleet.node_name.clone().unwrap_or_else(host_name);
    let token = fleet.token.clone();
    let address = fleet.node_address.clone();
    for hub in &hubs {
        tracing::info!(hub = %hub, node = %name, "joining the hub");
    }
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a client without custom TLS always builds");
        let urls: Vec<String> = hubs
            .iter()
            .map(|hub| format!("{}/hub/nodes/{name}", hub.trim_end_matches('/')))
            .collect();
        let mut standings = vec![Standing::Unknown; hubs.len()];
        let mut ticks = tokio::time::interval(porten_hub::fleet::REPORT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let facts = {
                let (models, store, name) = (models.clone(), store.clone(), name.clone());
                match tokio::task::spawn_blocking(move || node_facts(&name, &models, &store)).await
                {
                    Ok(facts) => facts,
                    Err(_) => continue,
                }
            };
            let report = Report {
                facts,
                port,
                address: address.clone(),
            };
            let sends = urls.iter().map(|url| {
                let mut request = client.post(url).json(&report);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                request.send()
            });
            let answers = futures::future::join_all(sends).await;
            for ((answer, was), hub) in answers.into_iter().zip(&mut standings).zip(&hubs) {
                let now = standing(answer, &name, token.as_deref());
                if now != *was {
                    now.log(hub);
                    *was = now;
                }
            }
        }
    });
}

/// How the hub took the last report.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    Unknown,
    Joined,
    Refused(u16),
    Unproven,
    Unreachable(String),
}

impl Standing {
    fn log(&self, hub: &str) {
        match self {
            Standing::Unknown => {}
            Standing::Joined => tracing::info!(hub, "joined the hub"),
            Standing::Refused(401) => tracing::error!(
                hub,
                "the hub refused this node: wrong or missing join token (PORTEN_HUB_TOKEN)"
            ),
            Standing::Refused(status) => {
                tracing::error!(hub, status, "the hub refused this node's report")
            }
            Standing::Unproven => tracing::error!(
                hub,
                "the hub did not prove it holds the join token; not trusting it"
            ),
            Standing::Unreachable(error) => {
                tracing::warn!(hub, error = %error, "cannot reach the hub; retrying every second")
            }
        }
    }
}

fn standing(sent: reqwest::Result<reqwest::Response>, name: &str, token: Option<&str>) -> Standing {
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => return Standing::Unreachable(e.without_url().to_string()),
    };
    if !answer.status().is_success() {
        return Standing::Refused(answer.status().as_u16());
    }
    let proof = answer
        .headers()
        .get(token::PROOF_HEADER)
        .and_then(|v| v.to_str().ok());
    match token {
        Some(token) if !token::proven(token, name, proof) => Standing::Unproven,
        _ => Standing::Joined,
    }
}

/// This node's facts now.
pub fn node_facts(name: &str, models: &ModelRegistry, store: &Store) -> NodeFacts {
    let status = models.status();
    let budget_bytes = status.budget_bytes.unwrap_or(u64::MAX);
    let reserved_bytes = status.reserved_bytes;
    let mut facts = Vec::new();
    let mut catalog = Vec::new();
    for (slot, residency) in models.slots_with_residency(status) {
        catalog.push(Offer {
            model: residency.id.clone(),
            bytes: slot.estimate.total,
        });
        let state = match residency.state {
            "loaded" => ModelState::Loaded,
            "loading" => ModelState::Loading,
            _ => continue,
        };
        facts.push(ModelFacts {
            bytes: residency
                .estimated_bytes
                .max(residency.measured_bytes.unwrap_or(0)),
            in_flight: residency.in_flight as u32,
            queued: (residency.waiting + slot.queued()) as u32,
            idle_ms: residency.idle_ms.unwrap_or(0),
            loaded_ms: residency.loaded_ms.unwrap_or(0),
            model: residency.id,
            state,
        });
    }
    let store = match store.list() {
        Ok(list) => list
            .into_iter()
            .map(|summary| {
                let model = &summary.manifest.model;
                if model.tag == DEFAULT_TAG {
                    model.name.clone()
                } else {
                    model.to_string()
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the store for the hub");
            Vec::new()
        }
    };
    NodeFacts {
        name: name.to_string(),
        budget_bytes,
        reserved_bytes,
        models: facts,
        store,
        catalog,
    }
}

/// The machine's host name, the default node name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}
