//! The wasmtime engine plugins run in: epoch interruption ticking every millisecond for call
//! deadlines, a memory limit per instance, and compiled components cached on disk.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine};

use crate::instance::HostState;
use crate::{Error, Result};

/// The versions of `porten:policy` a world may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// `wit/policy.wit`: candidates as records with their names, answers by name.
    V0_1,
    /// `wit/v0.2`: names sent once, candidates as parallel lists, answers by index.
    V0_2,
}

/// What one plugin call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for one decision (measured in 1 ms epochs, so up to 1 ms more).
    pub deadline: Duration,
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            memory_bytes: 64 << 20,
        }
    }
}

/// A shared engine. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    cache_dir: Option<PathBuf>,
    _ticker: Arc<Ticker>,
}

/// Stops the epoch thread when the last engine handle goes.
struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl PluginEngine {
    /// An engine whose compiled components are cached in `cache_dir` (none: compiled on every
    /// load).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| Error::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = engine.clone();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("porten-plugin-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| Error::Engine(e.to_string()))?;
        Ok(Self {
            engine,
            limits,
            cache_dir,
            _ticker: Arc::new(Ticker(stop)),
        })
    }

    /// Epochs a call may run for.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.limits.deadline.as_millis() as u64).max(1)
    }

    /// Compiles the component at `path`, or loads the artifact compiled from the same bytes by
    /// an engine like this one.
    pub fn component(&self, path: &Path) -> Result<Component> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |e: wasmtime::Error| Error::Invalid {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let Some(dir) = &self.cache_dir else {
            return Component::from_binary(&self.engine, &bytes).map_err(invalid);
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let artifact = dir.join(format!(
            "{}-{:016x}.cwasm",
            blake3::hash(&bytes).to_hex(),
            engine_hash.finish()
        ));
        if let Ok(compiled) = std::fs::read(&artifact) {
            // SAFETY: the artifact was written below by `precompile_component` of an engine with
            // this compatibility hash, into porten's own cache directory (as trusted as the
            // binary), under a name bound to the component's content.
            if let Ok(component) = unsafe { Component::deserialize(&self.engine, &compiled) } {
                return Ok(component);
            }
        }
        let compiled = self.engine.precompile_component(&bytes).map_err(invalid)?;
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = dir.join(format!(".{}.tmp", uuid_like()));
            if std::fs::write(&tmp, &compiled).is_ok() && std::fs::rename(&tmp, &artifact).is_err()
            {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        // SAFETY: `compiled` comes from `precompile_component` of this very engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(invalid)
    }
}

/// Which version of `porten:policy/{interface}` the component exports; `None` if it exports
/// neither (it is refused when linked as either).
pub(crate) fn exported_version(component: &Component, interface: &str) -> Option<Version> {
    let exports = |version: &str| {
        component
            .get_export_index(
                None,
                format!("porten:policy/{interface}@{version}").as_str(),
            )
            .is_some()
    };
    if exports("0.2.0") {
        Some(Version::V0_2)
    } else if exports("0.1.0") {
        Some(Version::V0_1)
    } else {
        None
    }
}

impl PluginEngine {
    /// Links `component` (from `path`) as a component of `world`: `bindings` turns the linked
    /// instance-to-be into the world's typed bindings. A component that imports anything, or
    /// whose exports are not the world's, is refused here.
    pub(crate) fn link<B>(
        &self,
        path: &Path,
        component: &Component,
        world: &'static str,
        bindings: impl FnOnce(InstancePre<HostState>) -> wasmtime::Result<B>,
    ) -> Result<B> {
        let wrong = |e: wasmtime::Error| Error::WrongWorld {
            path: path.to_path_buf(),
            world,
            reason: format!("{e:#}"),
        };
        let linker = Linker::<HostState>::new(&self.engine);
        let pre = linker.instantiate_pre(component).map_err(wrong)?;
        bindings(pre).map_err(wrong)
    }
}

/// A name no other writer picks at the same time: process id and a counter.
fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
