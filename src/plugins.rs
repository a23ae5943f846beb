//! Wiring the WebAssembly policy plugins: one engine per process (its compiled components
//! cached under `$PORTEN_HOME/plugin-cache`), the configured placement and eviction plugins,
//! and their reloads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use porten_plugins::{Limits, PluginEngine, ReloadingEviction, ReloadingPlacement};

use crate::config::Config;

/// The configured plugins, loaded.
#[derive(Default)]
pub struct Plugins {
    /// Decides what to unload from memory.
    pub placement: Option<Arc<ReloadingPlacement>>,
    /// Decides what to evict from the store.
    pub eviction: Option<Arc<ReloadingEviction>>,
}

impl Plugins {
    /// Loads what the configuration names; a plugin that cannot be loaded is an error.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let settings = &config.plugins;
        if settings.placement.is_none() && settings.eviction.is_none() {
            return Ok(Self::default());
        }
        let engine = engine(config)?;
        let placement = match &settings.placement {
            Some(path) => Some(
                ReloadingPlacement::placement(&engine, path)
                    .context("cannot load the placement plugin")?,
            ),
            None => None,
        };
        let eviction = match &settings.eviction {
            Some(path) => Some(load_eviction(&engine, path)?),
            None => None,
        };
        Ok(Self {
            placement,
            eviction,
        })
    }

    /// Reloads each plugin whose file changes, checking every second.
    pub fn watch(&self) {
        if let Some(p) = &self.placement {
            p.watch(Duration::from_secs(1));
        }
        if let Some(e) = &self.eviction {
            e.watch(Duration::from_secs(1));
        }
    }

    /// Reloads every plugin now (SIGHUP).
    pub fn reload(&self) {
        if let Some(p) = &self.placement {
            p.reload(true);
        }
        if let Some(e) = &self.eviction {
            e.reload(true);
        }
    }
}

/// The configured eviction plugin alone, for the store commands, which make no placement
/// decisions.
pub fn eviction_plugin(config: &Config) -> anyhow::Result<Option<Arc<ReloadingEviction>>> {
    match &config.plugins.eviction {
        Some(path) => Ok(Some(load_eviction(&engine(config)?, path)?)),
        None => Ok(None),
    }
}

fn load_eviction(
    engine: &PluginEngine,
    path: &std::path::Path,
) -> anyhow::Result<Arc<ReloadingEviction>> {
    ReloadingEviction::eviction(engine, path).context("cannot load the eviction plugin")
}

/// The engine plugins run in, with the configured limits.
pub fn engine(config: &Config) -> anyhow::Result<PluginEngine> {
    let cache = config
        .home
        .clone()
        .unwrap_or_else(|| ".porten".into())
        .join("plugin-cache");
    Ok(PluginEngine::new(
        Limits {
            deadline: Duration::from_millis(config.plugins.deadline_ms),
            memory_bytes: (config.plugins.memory_mb as usize) << 20,
        },
        Some(cache),
    )?)
}
