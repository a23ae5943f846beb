//! `[store]`: the weight store's place and its disk budget (`PORTEN_AUTO_DOWNLOAD_MB`,
//! `--budget-mb`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::env::{parsed, EnvLookup};
use super::Overrides;

/// The `[store]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Where blobs and manifests live (default `$PORTEN_HOME/store`).
    pub path: Option<PathBuf>,
    /// Disk budget in MiB (`PORTEN_AUTO_DOWNLOAD_MB`); none means no limit.
    pub budget_mb: Option<u64>,
}

impl StoreSettings {
    /// Applies the section's environment variables.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        if let Some(mb) = parsed(env, "PORTEN_AUTO_DOWNLOAD_MB", "a whole number of MiB")? {
            self.budget_mb = Some(mb);
        }
        Ok(())
    }

    /// Applies the section's command-line flags.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(mb) = o.budget_mb {
            self.budget_mb = Some(mb);
        }
    }

    /// Explains what is wrong, if anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.budget_mb == Some(0) {
            anyhow::bail!("the store budget must be at least 1 MiB (or unset for no limit)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::env::env_of;
    use super::super::{Config, Overrides};

    #[test]
    fn the_disk_budget_comes_from_porten_auto_download_mb_and_the_flag_beats_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let env = env_of(&[("PORTEN_HOME", home), ("PORTEN_AUTO_DOWNLOAD_MB", "2048")]);
        let (config, _) = Config::load(&Overrides::default(), &env).unwrap();
        assert_eq!(config.store_budget_bytes(), Some(2048 << 20));
        assert_eq!(config.store_path(), dir.path().join("store"));
        let flag = Overrides {
            budget_mb: Some(10),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&flag, &env).unwrap().0.store_budget_bytes(),
            Some(10 << 20)
        );
        let bad = env_of(&[("PORTEN_HOME", home), ("PORTEN_AUTO_DOWNLOAD_MB", "lots")]);
        let err = Config::load(&Overrides::default(), &bad).unwrap_err();
        assert!(err.to_string().contains("PORTEN_AUTO_DOWNLOAD_MB"), "{err}");
        let zero = env_of(&[("PORTEN_HOME", home), ("PORTEN_AUTO_DOWNLOAD_MB", "0")]);
        let err = Config::load(&Overrides::default(), &zero).unwrap_err();
        assert!(err.to_string().contains("at least 1 MiB"), "{err}");
    }
}
