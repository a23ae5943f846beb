//! Plugins that follow their file: when the `.wasm` changes on disk (or on request, for SIGHUP)
//! the new component is loaded beside the old one and swapped in between two decisions, so no
//! decision is dropped. A new file that fails to load leaves the old plugin deciding.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use porten_proxy::residency::{PlacementPolicy, PlacementRequest, PolicyFailure};
use porten_storage::{EvictionPolicy, EvictionRequest, ModelRef};

use crate::{PluginEngine, Result, WasmEvictionPolicy, WasmPlacementPolicy};

type Load<P> = dyn Fn(&PluginEngine, &Path) -> Result<P> + Send + Sync;

/// A plugin loaded from `path`, reloaded when the file changes.
pub struct Reloading<P> {
    engine: PluginEngine,
    path: PathBuf,
    /// The file's name, which a reload does not change.
    name: String,
    load: Box<Load<P>>,
    /// The plugin in use, and the stamp of the file it was loaded from.
    current: RwLock<(Arc<P>, Option<FileStamp>)>,
}

/// A file's modification time and size: when either changes, the plugin is reloaded.
type FileStamp = (SystemTime, u64);

impl<P: Send + Sync + 'static> Reloading<P> {
    fn new(
        engine: PluginEngine,
        path: &Path,
        load: impl Fn(&PluginEngine, &Path) -> Result<P> + Send + Sync + 'static,
    ) -> Result<Arc<Self>> {
        let stamp = stamp(path);
        let first = load(&engine, path)?;
        Ok(Arc::new(Self {
            engine,
            path: path.to_path_buf(),
            name: crate::placement::plugin_name(path),
            load: Box::new(load),
            current: RwLock::new((Arc::new(first), stamp)),
        }))
    }

    /// The plugin deciding now.
    fn current(&self) -> Arc<P> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Loads the file again if it changed since the last load (or always, with `force`).
    /// Returns whether a new plugin was swapped in.
    pub fn reload(&self, force: bool) -> bool {
        let stamp = stamp(&self.path);
        let last = self.current.read().unwrap_or_else(|p| p.into_inner()).1;
        if !force && (stamp == last || stamp.is_none()) {
            return false;
        }
        match (self.load)(&self.engine, &self.path) {
            Ok(plugin) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                    (Arc::new(plugin), stamp);
                tracing::info!(plugin = %self.path.display(), "policy plugin reloaded");
                true
            }
            Err(e) => {
                // Remember the stamp anyway: the same broken file is not retried every second.
                self.current.write().unwrap_or_else(|p| p.into_inner()).1 = stamp;
                tracing::error!(plugin = %self.path.display(), error = %e, "reloading the policy plugin failed; the previous one keeps deciding");
                false
            }
        }
    }

    /// Checks the file every `period` on a background thread for as long as the plugin lives.
    pub fn watch(self: &Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("porten-plugin-watch".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                match weak.upgrade() {
                    Some(plugin) => {
                        plugin.reload(false);
                    }
                    None => return,
                }
            });
    }
}

/// What identifies a version of the file: its modification time and size.
fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A placement plugin that follows its file.
pub type ReloadingPlacement = Reloading<WasmPlacementPolicy>;
/// An eviction plugin that follows its file.
pub type ReloadingEviction = Reloading<WasmEvictionPolicy>;

impl Reloading<WasmPlacementPolicy> {
    /// Loads the placement plugin at `path`; a bad file is an error now, later only a log line.
    pub fn placement(engine: &PluginEngine, path: &Path) -> Result<Arc<Self>> {
        Self::new(engine.clone(), path, WasmPlacementPolicy::load)
    }
}

impl Reloading<WasmEvictionPolicy> {
    /// Loads the eviction plugin at `path`; a bad file is an error now, later only a log line.
    pub fn eviction(engine: &PluginEngine, path: &Path) -> Result<Arc<Self>> {
        Self::new(engine.clone(), path, WasmEvictionPolicy::load)
    }
}

impl PlacementPolicy for Reloading<WasmPlacementPolicy> {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose_victims(&self, request: &PlacementRequest) -> Vec<String> {
        self.current().choose_victims(request)
    }

    fn try_choose_victims(&self, request: &PlacementRequest) -> Result<Vec<String>, PolicyFailure> {
        self.current().try_choose_victims(request)
    }
}

impl std::fmt::Debug for Reloading<WasmEvictionPolicy> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("path", &self.path)
            .finish()
    }
}

impl EvictionPolicy for Reloading<WasmEvictionPolicy> {
    fn name(&self) -> &str {
        &self.name
    }

    fn choose(&self, request: &EvictionRequest) -> Vec<ModelRef> {
        self.current().choose(request)
    }

    fn try_choose(
        &self,
        request: &EvictionRequest,
    ) -> Result<Vec<ModelRef>, porten_storage::PolicyFailure> {
        self.current().try_choose(request)
    }
}
