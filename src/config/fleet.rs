//! `[fleet]`: many machines behind one `porten hub`. A node's side (which hub it joins, under
//! what name, with which token) and the hub's (how it places models and how long a request
//! may wait). `[hub]` already names the Hugging Face Hub's settings, hence the name.

use std::time::Duration;

use porten_hub::{HotSettings, PlacementSettings, Strategy};
use serde::{Deserialize, Serialize};

use super::env::{non_empty, parsed, EnvLookup};

/// The `[fleet]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// The hub `porten serve` joins, `http://HOST:PORT` (`PORTEN_HUB`, `--hub`); several,
    /// comma-separated, for hubs side by side behind one load balancer (the node reports to
    /// each); none: the node serves alone.
    pub hub: Option<String>,
    /// This node's name in the fleet (`PORTEN_NODE_NAME`, `--node-name`; default: the host
    /// name).
    pub node_name: Option<String>,
    /// Where the hub reaches this node, `HOST:PORT` (`PORTEN_NODE_ADDRESS`); default: the
    /// address the hub sees the node's reports come from, with the port it listens on.
    pub node_address: Option<String>,
    /// The fleet's shared join token (`PORTEN_HUB_TOKEN`): a hub refuses nodes without it,
    /// and a node refuses a hub that cannot prove it holds it. None: no check (a trusted
    /// network only).
    pub token: Option<String>,
    /// Hub: among nodes where a model fits without unloading anything, `spread` (the most
    /// free memory) or `bin_pack` (the least that fits).
    pub strategy: Strategy,
    /// Hub: a model loaded less than this many seconds ago is never unloaded for another.
    pub min_age_secs: u64,
    /// Hub: requests that may wait for room at once; past it, 503 with Retry-After.
    pub queue_limit: usize,
    /// Hub: how long one request may wait for room before 503.
    pub wait_secs: u64,
    /// Hub: a model whose every copy has this many requests queued ...
    pub hot_queue: u32,
    /// ... for this many seconds gets another copy on another node.
    pub hot_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            hub: None,
            node_name: None,
            node_address: None,
            token: None,
            strategy: Strategy::Spread,
            min_age_secs: 30,
            queue_limit: 256,
            wait_secs: 60,
            hot_queue: HotSettings::default().queued,
            hot_secs: HotSettings::default().for_ms / 1000,
        }
    }
}

impl FleetConfig {
    /// Applies `PORTEN_HUB`, `PORTEN_NODE_NAME`, `PORTEN_NODE_ADDRESS`, `PORTEN_HUB_TOKEN`
    /// and `PORTEN_HUB_MIN_AGE_SECS`.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        for (name, field) in [
            ("PORTEN_HUB", &mut self.hub),
            ("PORTEN_NODE_NAME", &mut self.node_name),
            ("PORTEN_NODE_ADDRESS", &mut self.node_address),
            ("PORTEN_HUB_TOKEN", &mut self.token),
        ] {
            if let Some(value) = non_empty(env, name) {
                *field = Some(value);
            }
        }
        if let Some(secs) = parsed(env, "PORTEN_HUB_MIN_AGE_SECS", "a number of seconds")? {
            self.min_age_secs = secs;
        }
        Ok(())
    }

    /// Explains what is wrong, if anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        for hub in self.hubs() {
            let url = url::Url::parse(hub)
                .map_err(|e| anyhow::anyhow!("[fleet] hub = `{hub}` is not a URL: {e}"))?;
            anyhow::ensure!(
                url.scheme() == "http" || url.scheme() == "https",
                "[fleet] hub = `{hub}` must be an http:// or https:// URL"
            );
        }
        if let Some(name) = &self.node_name {
            anyhow::ensure!(
                !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "[fleet] node_name = `{name}`: use 1 to 64 letters, digits, `-`, `_` or `.`"
            );
        }
        anyhow::ensure!(
            self.queue_limit > 0,
            "[fleet] queue_limit must be at least 1"
        );
        Ok(())
    }

    /// The hubs a node reports to.
    pub fn hubs(&self) -> impl Iterator<Item = &str> {
        self.hub
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }

    /// The built-in placement policy's settings.
    pub fn placement(&self) -> PlacementSettings {
        PlacementSettings {
            strategy: self.strategy,
            min_age_ms: self.min_age_secs.saturating_mul(1000),
        }
    }

    /// When a model gets a second copy.
    pub fn hot(&self) -> HotSettings {
        HotSettings {
            queued: self.hot_queue,
            for_ms: self.hot_secs.saturating_mul(1000),
        }
    }

    /// How long one request may wait at the hub.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::env_of;

    #[test]
    fn the_environment_names_the_hub_and_a_bad_name_or_url_is_refused() {
        let mut fleet = FleetConfig::default();
        fleet
            .apply_env(&env_of(&[
                ("PORTEN_HUB", "http://10.0.0.1:8080"),
                ("PORTEN_NODE_NAME", "gpu-1"),
                ("PORTEN_HUB_TOKEN", "s3cret"),
            ]))
            .unwrap();
        assert_eq!(fleet.hub.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(fleet.token.as_deref(), Some("s3cret"));
        fleet.validate().unwrap();
        fleet.node_name = Some("gpu 1".into());
        assert!(fleet
            .validate()
            .unwrap_err()
            .to_string()
            .contains("node_name"));
        fleet.node_name = None;
        fleet.hub = Some("http://10.0.0.1:8080, http://10.0.0.2:8080".into());
        assert_eq!(fleet.hubs().count(), 2, "hubs side by side");
        fleet.validate().unwrap();
        fleet.hub = Some("10.0.0.1:8080".into());
        assert!(fleet.validate().is_err());
    }
}
