//! `[hub]`: models from a Hugging Face Hub. Where the Hub is and the token for it come from
//! the standard `HF_ENDPOINT` and `HF_TOKEN` (see `porten_storage::hub::HubSettings`).

use serde::{Deserialize, Serialize};

use super::env::{non_empty, EnvLookup};

/// The `[hub]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Pull a model that a request names and the server lacks (`hf://ORG/REPO:QUANT`, or a
    /// mirror model added since start-up) before answering it, within the disk budget
    /// (`PORTEN_AUTO_PULL`). Off by default: a server should not download gigabytes because
    /// a client named something; `porten run` and `/api/pull` pull either way.
    pub auto_pull: bool,
}

impl HubConfig {
    /// Applies `PORTEN_AUTO_PULL` (`1`/`true`/`on`, `0`/`false`/`off`).
    pub fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        if let Some(value) = non_empty(env, "PORTEN_AUTO_PULL") {
            self.auto_pull = match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                _ => anyhow::bail!("PORTEN_AUTO_PULL=`{value}` is not true or false"),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::env_of;

    #[test]
    fn auto_pull_is_off_unless_asked_and_says_which_values_it_takes() {
        let mut hub = HubConfig::default();
        assert!(!hub.auto_pull);
        hub.apply_env(&env_of(&[("PORTEN_AUTO_PULL", "1")]))
            .unwrap();
        assert!(hub.auto_pull);
        let error = hub
            .apply_env(&env_of(&[("PORTEN_AUTO_PULL", "maybe")]))
            .unwrap_err();
        assert!(error.to_string().contains("PORTEN_AUTO_PULL"), "{error}");
    }
}
