//! `[mirror]`: the bucket a team keeps its models in (`PORTEN_MIRROR`, `--mirror`). Credentials
//! are never written here; they come from the store's standard chain (`AWS_*` variables,
//! `~/.aws` profiles, instance metadata; `GOOGLE_*`, `AZURE_*`).

use serde::{Deserialize, Serialize};

use super::env::{non_empty, parsed, EnvLookup};
use super::Overrides;

/// The `[mirror]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorConfig {
    /// `s3://bucket/prefix`, `gs://...`, `az://...`, `file:///path`, or read-only
    /// `https://host/path` (`PORTEN_MIRROR`, `--mirror`). None: no mirror.
    pub url: Option<String>,
    /// `object_store` options for the URL's kind of store, such as `endpoint`, `region` and
    /// `allow_http = "true"` for an S3-compatible server on plain HTTP (only when asked).
    pub options: std::collections::BTreeMap<String, String>,
    /// Range requests (or upload parts) in flight per blob.
    pub concurrency: usize,
    /// MiB per range request and per upload part.
    pub part_size_mb: u64,
    /// Retries of a failed request before the transfer stops (`PORTEN_MIRROR_RETRIES`); a
    /// stopped pull resumes where it stopped.
    pub retries: usize,
    /// Seconds one request keeps being retried.
    pub retry_timeout_secs: u64,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        let defaults = porten_storage::MirrorSettings::new("");
        Self {
            url: None,
            options: Default::default(),
            concurrency: defaults.concurrency,
            part_size_mb: defaults.part_size >> 20,
            retries: defaults.retries,
            retry_timeout_secs: defaults.retry_timeout.as_secs(),
        }
    }
}

impl MirrorConfig {
    /// The settings the storage crate opens a mirror with; `None` without a URL.
    pub fn settings(&self) -> Option<porten_storage::MirrorSettings> {
        let url = self.url.clone().filter(|u| !u.is_empty())?;
        Some(porten_storage::MirrorSettings {
            options: self.options.clone().into_iter().collect(),
            concurrency: self.concurrency,
            part_size: self.part_size_mb << 20,
            retries: self.retries,
            retry_timeout: std::time::Duration::from_secs(self.retry_timeout_secs),
            ..porten_storage::MirrorSettings::new(url)
        })
    }

    /// Applies the section's environment variables.
    pub fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        if let Some(url) = non_empty(env, "PORTEN_MIRROR") {
            self.url = Some(url);
        }
        if let Some(n) = parsed(env, "PORTEN_MIRROR_RETRIES", "a whole number")? {
            self.retries = n;
        }
        Ok(())
    }

    /// Applies the section's command-line flags.
    pub fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(url) = &o.mirror {
            self.url = Some(url.clone());
        }
    }

    /// Explains what is wrong, if anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 || self.part_size_mb == 0 {
            anyhow::bail!("[mirror] concurrency and part_size_mb must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::env::env_of;
    use super::super::{tests::write_config, Config, Overrides};

    #[test]
    fn the_mirror_comes_from_the_file_then_env_then_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let home = || Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert!(config.mirror.settings().is_none(), "no mirror unless asked");
        write_config(dir.path(), "[mirror]\nurl = \"file:///a\"\nretries = 3\n");
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert_eq!(config.mirror.settings().unwrap().retries, 3);
        let env = env_of(&[
            ("PORTEN_MIRROR", "s3://b/p"),
            ("PORTEN_MIRROR_RETRIES", "1"),
        ]);
        let (config, _) = Config::load(&home(), &env).unwrap();
        let settings = config.mirror.settings().unwrap();
        assert_eq!((settings.url.as_str(), settings.retries), ("s3://b/p", 1));
        let flag = Overrides {
            mirror: Some("gs://c/q".into()),
            ..home()
        };
        assert_eq!(
            Config::load(&flag, &env).unwrap().0.mirror.url.as_deref(),
            Some("gs://c/q")
        );
        let bad = env_of(&[("PORTEN_MIRROR_RETRIES", "many")]);
        let error = Config::load(&home(), &bad).unwrap_err();
        assert!(
            error.to_string().contains("PORTEN_MIRROR_RETRIES"),
            "{error}"
        );
        write_config(dir.path(), "[mirror]\nconcurrency = 0\n");
        let error = Config::load(&home(), &env_of(&[])).unwrap_err();
        assert!(error.to_string().contains("concurrency"), "{error}");
    }
}
