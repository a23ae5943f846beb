//! porten's one configuration: a TOML file, overridden by `PORTEN_*` environment variables,
//! overridden by command-line flags. Tests build it from values, never from the process env.
//! One module per section: its table, defaults, environment variables, flags and validation.

mod env;
mod fleet;
mod hub;
mod memory;
mod mirror;
mod plugins;
mod server;
mod store;
mod telemetry;

use std::path::{Path, PathBuf};

use anyhow::Context;
use porten_proxy::config::{MemoryConfig, ModelSpec, ServerConfig};
use porten_proxy::residency::KeepAlive;
use serde::{Deserialize, Serialize};

pub use env::EnvLookup;
pub use fleet::FleetConfig;
pub use hub::HubConfig;
pub use mirror::MirrorConfig;
pub use plugins::PluginSettings;
pub use store::StoreSettings;
pub use telemetry::TelemetrySettings;

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
    /// Models from a Hugging Face Hub.
    pub hub: HubConfig,
    /// Many machines behind one `porten hub`.
    pub fleet: FleetConfig,
    /// WebAssembly policy plugins.
    pub plugins: PluginSettings,
    /// What porten reports: `/metrics` (traces and OTLP export follow the standard `OTEL_*`
    /// variables, see `crate::telemetry`).
    pub telemetry: TelemetrySettings,
    /// Models served, as `[[models]]` tables with `id` and `path` (or `id` alone for a model in
    /// the store). None at all: every model in the store is served.
    pub models: Vec<ModelSpec>,
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
    /// `--hub`.
    pub hub: Option<String>,
    /// `--node-name`.
    pub node_name: Option<String>,
}

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
        server::apply_env(&mut self.server, env)?;
        self.store.apply_env(env)?;
        memory::apply_env(&mut self.memory, env)?;
        self.telemetry.apply_env(env)?;
        self.plugins.apply_env(env);
        self.mirror.apply_env(env)?;
        self.hub.apply_env(env)?;
        self.fleet.apply_env(env)?;
        Ok(())
    }

    fn apply_overrides(&mut self, o: &Overrides) {
        server::apply_overrides(&mut self.server, o);
        self.store.apply_overrides(o);
        memory::apply_overrides(&mut self.memory, o);
        self.telemetry.apply_overrides(o);
        self.mirror.apply_overrides(o);
        if let Some(hub) = &o.hub {
            self.fleet.hub = Some(hub.clone());
        }
        if let Some(name) = &o.node_name {
            self.fleet.node_name = Some(name.clone());
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
        self.store.validate()?;
        memory::validate(&self.memory)?;
        self.plugins.validate()?;
        self.mirror.validate()?;
        self.fleet.validate()?;
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
    use super::env::env_of;
    use super::*;

    /// Writes `porten.toml` into `dir`, for the section tests.
    pub(super) fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("porten.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_documented_sample_configuration_parses() {
        let guide = include_str!("../../docs/serving.md");
        let start = guide.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + guide[start..].find("```").unwrap();
        let config: Config = toml::from_str(&guide[start..end]).unwrap();
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
        assert_eq!(model.sampling.temperature, Some(0.2));
        assert_eq!(config.server.responses.store_mb, 64);
        assert_eq!(
            config.server.connections,
            porten_proxy::config::ConnectionLimits::default(),
            "the guide states the connection defaults"
        );
        let mirror = config.mirror.settings().unwrap();
        assert_eq!(mirror.url, "s3://team-models/porten");
        assert_eq!((mirror.concurrency, mirror.part_size), (8, 16 << 20));
        assert!(mirror
            .options
            .contains(&("allow_http".to_string(), "true".to_string())));
        config.validate().unwrap();
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
