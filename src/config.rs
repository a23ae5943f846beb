//! porten's one configuration: a TOML file, overridden by `PORTEN_*` environment variables,
//! overridden by command-line flags. Tests build it from values, never from the process env.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use porten_proxy::config::{MemoryConfig, ModelSpec, ServerConfig};
use porten_proxy::residency::KeepAlive;
use serde::{Deserialize, Serialize};

/// The whole configuration (`$PORTEN_HOME/porten.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where porten keeps its state (`PORTEN_HOME`; default `~/.local/share/porten`).
    pub home: Option<PathBuf>,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The weight store.
    pub store: StoreSettings,
    /// The memory budget for loaded models and how long idle ones stay.
    pub memory: MemoryConfig,
    /// The bucket models are pulled from and pushed to.
    pub mirror: MirrorConfig,
    /// WebAssembly policy plugins.
    pub plugins: PluginSettings,
    /// What porten reports: `/metrics` (traces and OTLP export follow the standard `OTEL_*`
    /// variables, see `crate::telemetry`).
    pub telemetry: TelemetrySettings,
    /// Models served, as `[[models]]` tables with `id` and `path` (or `id` alone for a model in
    /// the store). None at all: every model in the store is served.
    pub models: Vec<ModelSpec>,
}

/// The `[store]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Where blobs and manifests live (default `$PORTEN_HOME/store`).
    pub path: Option<PathBuf>,
    /// Disk budget in MiB (`PORTEN_AUTO_DOWNLOAD_MB`); none means no limit.
    pub budget_mb: Option<u64>,
}

/// The `[mirror]` table: where a team keeps its models. Credentials are never written here;
/// they come from the store's standard chain (`AWS_*` variables, `~/.aws` profiles, instance
/// metadata; `GOOGLE_*`, `AZURE_*`).
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
}

/// The `[plugins]` table: WebAssembly components of the worlds in `wit/` that make porten's
/// placement and eviction decisions, each checked and backed by the built-in policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// A `placement-policy` component: which loaded models to unload when another must fit
    /// (`PORTEN_PLACEMENT_PLUGIN`).
    pub placement: Option<PathBuf>,
    /// An `eviction-policy` component: which models leave the store when room is needed
    /// (`PORTEN_EVICTION_PLUGIN`).
    pub eviction: Option<PathBuf>,
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
            deadline_ms: 50,
            memory_mb: 64,
        }
    }
}

/// The `[telemetry]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Record metrics and serve them as Prometheus text at `GET /metrics` (`PORTEN_METRICS`,
    /// `--no-metrics`; default on). Off, no metric is recorded at all unless an OTLP metrics
    /// endpoint is set.
    pub prometheus: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { prometheus: true }
    }
}

impl Config {
    /// The store's root directory.
    pub fn store_path(&self) -> PathBuf {
        self.store.path.clone().unwrap_or_else(|| {
            self.home
                .clone()
                .unwrap_or_else(|| PathBuf::from(".porten"))
                .join("store")
        })
    }

    /// The disk budget in bytes.
    pub fn store_budget_bytes(&self) -> Option<u64> {
        self.store.budget_mb.map(|mb| mb.saturating_mul(1 << 20))
    }
}

/// Values given on the command line; each one set wins over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`: an explicit file, which must exist.
    pub config: Option<PathBuf>,
    /// `--home`.
    pub home: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--api-key` (repeatable); replaces the configured keys when given.
    pub api_keys: Vec<String>,
    /// `--model ID=PATH` (repeatable); added to the file's models, replacing one of the same id.
    pub models: Vec<ModelSpec>,
    /// `--max-body-bytes`.
    pub max_body_bytes: Option<usize>,
    /// `--budget-mb`.
    pub budget_mb: Option<u64>,
    /// `--vram-budget-mb`.
    pub vram_budget_mb: Option<u64>,
    /// `--keep-alive`.
    pub keep_alive: Option<KeepAlive>,
    /// `--no-metrics`.
    pub no_metrics: bool,
    /// `--mirror`.
    pub mirror: Option<String>,
}

/// Reads a `PORTEN_*` variable; the binary passes `std::env::var`, tests a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Config {
    /// Builds the configuration: file, then environment, then flags, then validation.
    pub fn load(overrides: &Overrides, env: EnvLookup<'_>) -> anyhow::Result<(Self, PathBuf)> {
        let env_home = env("PORTEN_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let home = overrides
            .home
            .clone()
            .or(env_home)
            .unwrap_or_else(|| default_home(env));
        let (path, must_exist) = match &overrides.config {
            Some(p) => (p.clone(), true),
            None => (home.join("porten.toml"), false),
        };
        let mut config = Self::read_file(&path, must_exist)?;
        config.home = Some(home);
        config.apply_env(env)?;
        config.apply_overrides(overrides);
        config.validate()?;
        Ok((config, path))
    }

    fn read_file(path: &Path, must_exist: bool) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("invalid configuration file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                Ok(Self::default())
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn apply_env(&mut self, env: EnvLookup<'_>) -> anyhow::Result<()> {
        if let Some(listen) = env("PORTEN_LISTEN").filter(|v| !v.is_empty()) {
            self.server.listen = listen.parse().with_context(|| {
                format!("PORTEN_LISTEN=`{listen}` is not an address like 127.0.0.1:8080")
            })?;
        }
        if let Some(keys) = env("PORTEN_API_KEYS") {
            self.server.api_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(mb) = env("PORTEN_AUTO_DOWNLOAD_MB").filter(|v| !v.is_empty()) {
            self.store.budget_mb = Some(mb.parse().with_context(|| {
                format!("PORTEN_AUTO_DOWNLOAD_MB=`{mb}` is not a whole number of MiB")
            })?);
        }
        if let Some(mb) = env("PORTEN_VRAM_BUDGET_MB").filter(|v| !v.is_empty()) {
            self.memory.budget_mb = Some(mb.parse().with_context(|| {
                format!("PORTEN_VRAM_BUDGET_MB=`{mb}` is not a whole number of MiB")
            })?);
        }
        if let Some(k) = env("PORTEN_KEEP_ALIVE").filter(|v| !v.is_empty()) {
            self.memory.keep_alive =
                KeepAlive::parse(&k).map_err(|e| anyhow::anyhow!("PORTEN_KEEP_ALIVE: {e}"))?;
        }
        if let Some(metrics) = env("PORTEN_METRICS").filter(|v| !v.is_empty()) {
            self.telemetry.prometheus = match metrics.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => bail!("PORTEN_METRICS=`{metrics}` must be on or off"),
            };
        }
        if let Some(path) = env("PORTEN_PLACEMENT_PLUGIN").filter(|v| !v.is_empty()) {
            self.plugins.placement = Some(path.into());
        }
        if let Some(path) = env("PORTEN_EVICTION_PLUGIN").filter(|v| !v.is_empty()) {
            self.plugins.eviction = Some(path.into());
        }
        if let Some(url) = env("PORTEN_MIRROR").filter(|v| !v.is_empty()) {
            self.mirror.url = Some(url);
        }
        if let Some(n) = env("PORTEN_MIRROR_RETRIES").filter(|v| !v.is_empty()) {
            self.mirror.retries = n
                .parse()
                .with_context(|| format!("PORTEN_MIRROR_RETRIES=`{n}` is not a whole number"))?;
        }
        if let Some(max) = env("PORTEN_MAX_BODY_BYTES").filter(|v| !v.is_empty()) {
            self.server.max_body_bytes = max.parse().with_context(|| {
                format!("PORTEN_MAX_BODY_BYTES=`{max}` is not a number of bytes")
            })?;
        }
        Ok(())
    }

    fn apply_overrides(&mut self, o: &Overrides) {
        if let Some(listen) = o.listen {
            self.server.listen = listen;
        }
        if !o.api_keys.is_empty() {
            self.server.api_keys = o.api_keys.clone();
        }
        if let Some(max) = o.max_body_bytes {
            self.server.max_body_bytes = max;
        }
        if let Some(mb) = o.budget_mb {
            self.store.budget_mb = Some(mb);
        }
        if let Some(mb) = o.vram_budget_mb {
            self.memory.budget_mb = Some(mb);
        }
        if let Some(k) = o.keep_alive {
            self.memory.keep_alive = k;
        }
        if o.no_metrics {
            self.telemetry.prometheus = false;
        }
        if let Some(url) = &o.mirror {
            self.mirror.url = Some(url.clone());
        }
        for model in &o.models {
            self.models.retain(|m| m.id != model.id);
            self.models.push(model.clone());
        }
    }

    /// Explains what is wrong, if anything.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.server.validate()?;
        for model in &self.models {
            model.validate()?;
        }
        if self.store.budget_mb == Some(0) {
            bail!("the store budget must be at least 1 MiB (or unset for no limit)");
        }
        if self.memory.budget_mb == Some(0) {
            bail!("the memory budget (PORTEN_VRAM_BUDGET_MB) must be at least 1 MiB");
        }
        if self.plugins.deadline_ms == 0 || self.plugins.memory_mb == 0 {
            bail!("[plugins] deadline_ms and memory_mb must be at least 1");
        }
        if self.mirror.concurrency == 0 || self.mirror.part_size_mb == 0 {
            bail!("[mirror] concurrency and part_size_mb must be at least 1");
        }
        Ok(())
    }
}

fn default_home(env: EnvLookup<'_>) -> PathBuf {
    match env("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/porten"),
        None => PathBuf::from(".porten"),
    }
}

/// Parses `--model`: `ID=PATH` for files on disk, or a store name (`smollm2`, `org/m:q4`).
pub fn parse_model_flag(flag: &str) -> Result<ModelSpec, String> {
    match flag.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => Ok(ModelSpec::new(id, path)),
        Some(_) => Err(format!(
            "expected ID=PATH or a store model name, got `{flag}`"
        )),
        None => porten_storage::ModelRef::parse(flag)
            .map(|_| ModelSpec::new(flag, ""))
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("porten.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn metrics_are_on_unless_the_file_env_or_flag_turns_them_off() {
        let dir = tempfile::tempdir().unwrap();
        let home = || Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert!(config.telemetry.prometheus);
        write_config(dir.path(), "[telemetry]\nprometheus = false\n");
        let (config, _) = Config::load(&home(), &env_of(&[])).unwrap();
        assert!(!config.telemetry.prometheus);
        let (config, _) = Config::load(&home(), &env_of(&[("PORTEN_METRICS", "on")])).unwrap();
        assert!(config.telemetry.prometheus, "env wins over the file");
        let flag = Overrides {
            no_metrics: true,
            ..home()
        };
        let (config, _) = Config::load(&flag, &env_of(&[("PORTEN_METRICS", "on")])).unwrap();
        assert!(!config.telemetry.prometheus, "the flag wins over env");
        let error = Config::load(&home(), &env_of(&[("PORTEN_METRICS", "maybe")])).unwrap_err();
        assert!(error.to_string().contains("PORTEN_METRICS"), "{error}");
    }

    /// The configuration sample in the README is a valid configuration.
    #[test]
    fn the_readme_sample_configuration_parses() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let config: Config = toml::from_str(&readme[start..end]).unwrap();
        assert_eq!(config.memory.budget_mb, Some(16384));
        assert!(config.telemetry.prometheus);
        assert_eq!(
            config.memory.keep_alive,
            KeepAlive::For(std::time::Duration::from_secs(300))
        );
        let model = &config.models[0];
        assert_eq!(
            (model.max_concurrency, model.context_length),
            (4, Some(4096))
        );
        assert!(model.keep_alive.is_some() && !model.preload);
        let mirror = config.mirror.settings().unwrap();
        assert_eq!(mirror.url, "s3://team-models/porten");
        assert_eq!((mirror.concurrency, mirror.part_size), (8, 16 << 20));
        assert!(mirror
            .options
            .contains(&("allow_http".to_string(), "true".to_string())));
        config.validate().unwrap();
    }

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
    }

    #[test]
    fn vram_budget_and_keep_alive_come_from_env_and_flags() {
        let env = env_of(&[
            ("PORTEN_VRAM_BUDGET_MB", "2048"),
            ("PORTEN_KEEP_ALIVE", "-1"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.memory.budget_mb, Some(2048));
        assert_eq!(config.memory.keep_alive, KeepAlive::Forever);
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            vram_budget_mb: Some(512),
            keep_alive: Some(KeepAlive::parse("30s").unwrap()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.memory.budget_mb, Some(512));
        assert_eq!(config.memory.keep_alive, KeepAlive::parse("30s").unwrap());
        let bad = env_of(&[("PORTEN_KEEP_ALIVE", "soon")]);
        let overrides = Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        assert!(Config::load(&overrides, &bad)
            .unwrap_err()
            .to_string()
            .contains("PORTEN_KEEP_ALIVE"));
    }

    #[test]
    fn flags_beat_env_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_config(
            dir.path(),
            "[server]\nlisten = \"127.0.0.1:1111\"\napi_keys = [\"file\"]\n\n[[models]]\nid = \"a\"\npath = \"/x\"\n",
        );
        let env = env_of(&[
            ("PORTEN_LISTEN", "127.0.0.1:2222"),
            ("PORTEN_API_KEYS", "e1, e2"),
        ]);
        let overrides = Overrides {
            config: Some(file.clone()),
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.server.listen.port(), 2222);
        assert_eq!(config.server.api_keys, vec!["e1", "e2"]);

        let overrides = Overrides {
            config: Some(file),
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            models: vec![parse_model_flag("a=/y").unwrap()],
            ..Default::default()
        };
        let (config, _) = Config::load(&overrides, &env).unwrap();
        assert_eq!(config.server.listen.port(), 3333);
        assert_eq!(
            config.models.len(),
            1,
            "the flag replaces the file's model `a`"
        );
        assert_eq!(config.models[0].path, PathBuf::from("/y"));
    }

    #[test]
    fn the_default_file_lives_in_porten_home_and_may_be_absent() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let overrides = Overrides {
            models: vec![parse_model_flag("m=/x").unwrap()],
            ..Default::default()
        };
        let (config, path) = Config::load(&overrides, &env_of(&[("PORTEN_HOME", home)])).unwrap();
        assert_eq!(path, dir.path().join("porten.toml"));
        assert_eq!(config.server, ServerConfig::default());
        write_config(dir.path(), "[server]\nmax_body_bytes = 2048\n");
        let (config, _) = Config::load(&overrides, &env_of(&[("PORTEN_HOME", home)])).unwrap();
        assert_eq!(config.server.max_body_bytes, 2048);
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let overrides = Overrides {
            config: Some("/definitely/not/here.toml".into()),
            ..Default::default()
        };
        let err = Config::load(&overrides, &env_of(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("/definitely/not/here.toml"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_config(dir.path(), "[server]\nlisten_port = 9\n");
        let overrides = Overrides {
            config: Some(file),
            ..Default::default()
        };
        let err = Config::load(&overrides, &env_of(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("listen_port"), "{err:#}");
    }

    #[test]
    fn bad_env_values_say_which_variable() {
        let overrides = Overrides {
            models: vec![parse_model_flag("m=/x").unwrap()],
            ..Default::default()
        };
        let err = Config::load(&overrides, &env_of(&[("PORTEN_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("PORTEN_LISTEN"), "{err}");
    }

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
    }

    #[test]
    fn model_flags_are_id_and_path_or_a_store_name() {
        assert_eq!(
            parse_model_flag("smollm2=/m.gguf").unwrap().path,
            PathBuf::from("/m.gguf")
        );
        let store_model = parse_model_flag("org/smollm2:q4").unwrap();
        assert_eq!(
            (
                store_model.id.as_str(),
                store_model.path.as_os_str().is_empty()
            ),
            ("org/smollm2:q4", true)
        );
        assert!(parse_model_flag("=/m.gguf").is_err());
        assert!(parse_model_flag("../escape").is_err());
    }
}
