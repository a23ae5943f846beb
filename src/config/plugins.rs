//! `[plugins]`: WebAssembly components of the worlds in `wit/` that make porten's placement and
//! eviction decisions, each checked and backed by the built-in policy
//! (`PORTEN_PLACEMENT_PLUGIN`, `PORTEN_EVICTION_PLUGIN`, and for `porten hub`
//! `PORTEN_FLEET_PLUGIN`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::env::{non_empty, EnvLookup};

/// The `[plugins]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// A `placement-policy` component: which loaded models to unload when another must fit
    /// (`PORTEN_PLACEMENT_PLUGIN`).
    pub placement: Option<PathBuf>,
    /// An `eviction-policy` component: which models leave the store when room is needed
    /// (`PORTEN_EVICTION_PLUGIN`).
    pub eviction: Option<PathBuf>,
    /// A `fleet-placement-policy` component (`wit/v0.2`): which node of a `porten hub` fleet
    /// loads a model (`PORTEN_FLEET_PLUGIN`).
    pub fleet: Option<PathBuf>,
    /// Milliseconds one decision may take before the built-in policy decides instead.
    pub deadline_ms: u64,
    /// MiB of memory one plugin instance may grow to.
    pub memory_mb: u64,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            placement: None,
            eviction: None,
            fleet: None,
            deadline_ms: 50,
            memory_mb: 64,
        }
    }
}

impl PluginSettings {
    /// Applies the section's environment variables.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) {
        if let Some(path) = non_empty(env, "PORTEN_PLACEMENT_PLUGIN") {
            self.placement = Some(path.into());
        }
        if let Some(path) = non_empty(env, "PORTEN_EVICTION_PLUGIN") {
            self.eviction = Some(path.into());
        }
        if let Some(path) = non_empty(env, "PORTEN_FLEET_PLUGIN") {
            self.fleet = Some(path.into());
        }
    }

    /// Explains what is wrong, if anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.deadline_ms == 0 || self.memory_mb == 0 {
            anyhow::bail!("[plugins] deadline_ms and memory_mb must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::env::env_of;
    use super::super::{tests::write_config, Config, Overrides};

    #[test]
    fn plugin_paths_come_from_the_file_then_env_and_limits_must_be_positive() {
        let dir = tempfile::tempdir().unwrap();
        let home = || Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        write_config(dir.path(), "[plugins]\nplacement = \"/a.wasm\"\n");
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert_eq!(config.plugins.placement, Some(PathBuf::from("/a.wasm")));
        assert_eq!(config.plugins.eviction, None);
        let env = env_of(&[
            ("PORTEN_PLACEMENT_PLUGIN", "/b.wasm"),
            ("PORTEN_EVICTION_PLUGIN", "/c.wasm"),
        ]);
        let (config, _) = Config::load(&home(), &env).unwrap();
        assert_eq!(config.plugins.placement, Some(PathBuf::from("/b.wasm")));
        assert_eq!(config.plugins.eviction, Some(PathBuf::from("/c.wasm")));
        write_config(dir.path(), "[plugins]\ndeadline_ms = 0\n");
        let error = Config::load(&home(), &env_of(&[])).unwrap_err();
        assert!(error.to_string().contains("deadline_ms"), "{error}");
    }
}
