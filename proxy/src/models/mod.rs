//! The models this process serves: each one's spec, memory estimate and admission door, and the
//! residency scheduler that loads them with mistral.rs when they are asked for.

mod admitted;
mod loader;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::admission::Admission;
use crate::config::ModelSpec;
use crate::engine::{expected_source, resolve_source, LoadedModel, ModelKind, ModelSource};
use crate::residency::devices::{watch_devices, DeviceBudget, DeviceMemory, MemoryProbe};
use crate::residency::{
    self, estimate, Device, KeepAlive, LeastRecentlyUsed, LoadSettings, MemoryEstimate, ModelPlan,
    ModelShape, PlacementPolicy, ResidencyStatus, Scheduler, SchedulerSettings,
};
use crate::{Error, Result};
pub use admitted::Admitted;
use admitted::Turn;
use loader::MistralLoader;

/// Pulls a model a request names and the server lacks (the binary's catalog: the mirror, a
/// Hugging Face Hub); the model to serve, on disk.
pub type AutoPull = Arc<
    dyn Fn(
            &str,
            crate::catalog::PullProgress,
        ) -> futures::future::BoxFuture<'static, Result<NewModel>>
        + Send
        + Sync,
>;

/// A pull a request started and waits for, as `/admin/status` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PullState {
    /// The name the request used.
    pub model: String,
    /// The pull's last step (`pulling manifest`, `pulling <digest>`, ...).
    pub status: String,
    /// Bytes to download, once known.
    pub total: Option<u64>,
    /// Bytes done.
    pub completed: Option<u64>,
}

/// A check run just before a model loads, off the async threads (the server uses it to verify
/// store blobs); an error fails that model's load with the message.
pub type Preflight = Arc<dyn Fn(&ModelSpec) -> std::result::Result<(), String> + Send + Sync>;

/// How the registry decides what is loaded.
pub struct Residency {
    /// Each device's budget and where it came from (see [`residency::devices::budgets`]);
    /// empty is one device without a limit.
    pub devices: Vec<DeviceBudget>,
    /// Reads the devices' memory: each load is measured with it, and a watch lowers a
    /// device's limit while other processes hold memory porten counted on. `None`: loads are
    /// not measured and limits stay at the budgets.
    pub probe: Option<Arc<dyn MemoryProbe>>,
    /// NVIDIA GPUs a build that runs models elsewhere sees, for `/admin/status`.
    pub gpus_seen: Vec<DeviceMemory>,
    /// Keep-alive of models that set none.
    pub keep_alive: KeepAlive,
    /// Where models run.
    pub device: Device,
    /// Each model's shape, read from its metadata by the caller; a model without one is sized
    /// from its file sizes, generously.
    pub shapes: HashMap<String, ModelShape>,
    /// Chooses which idle models to unload to make room.
    pub policy: Arc<dyn PlacementPolicy>,
    /// Runs before each load.
    pub preflight: Option<Preflight>,
    /// Models whose files the preflight brings (pulled from a mirror on first use): their
    /// paths are checked when they load, not at start. Their specs name an explicit format, and
    /// a GGUF one its file.
    pub fetched_on_load: HashSet<String>,
    /// Pulls models requests name and the registry lacks; `None`: such requests get 404.
    pub auto_pull: Option<AutoPull>,
}

impl Default for Residency {
    fn default() -> Self {
        Self {
            devices: Vec::new(),
            probe: None,
            gpus_seen: Vec::new(),
            keep_alive: KeepAlive::default(),
            device: Device::of_this_build(),
            shapes: HashMap::new(),
            policy: Arc::new(LeastRecentlyUsed),
            preflight: None,
            fetched_on_load: HashSet::new(),
            auto_pull: None,
        }
    }
}

/// One served model.
pub struct ModelSlot {
    /// How it was declared.
    pub spec: ModelSpec,
    /// What it is expected to take in memory.
    pub estimate: MemoryEstimate,
    /// How its estimate was made.
    pub load_settings: LoadSettings,
    /// The shape its estimate came from.
    pub shape: ModelShape,
    source: ModelSource,
    /// Its files appear only after the preflight: resolve the source again then.
    fetched_on_load: bool,
    admission: Admission,
    /// Shared by every admitted request; held alone by one that reads a prompt's raw logits,
    /// which mistral.rs 0.8 cannot schedule beside any other prompt (it asserts, and its
    /// engine thread dies).
    turns: Arc<tokio::sync::RwLock<()>>,
}

impl ModelSlot {
    /// What it serves, known from its files before it is loaded.
    pub fn kind(&self) -> ModelKind {
        match self.source {
            ModelSource::Embedding(_) => ModelKind::Embedding,
            _ => ModelKind::Chat,
        }
    }

    /// Requests waiting for one of its slots.
    pub fn queued(&self) -> usize {
        self.admission.queued()
    }
}

/// Every served model's slot, by id: shared by the registry and its loader, and changed when a
/// model is pulled, copied or deleted while the server runs.
type Slots = Arc<std::sync::RwLock<BTreeMap<String, Arc<ModelSlot>>>>;

/// All served models, by id, and the scheduler that keeps them in memory.
pub struct ModelRegistry {
    slots: Slots,
    scheduler: Scheduler<LoadedModel>,
    device: Device,
    devices: Vec<DeviceBudget>,
    gpus_seen: Vec<DeviceMemory>,
    auto_pull: Option<AutoPull>,
    /// One auto-pull at a time: concurrent requests for one model share its pull.
    pulling: tokio::sync::Mutex<()>,
    /// Names requests used for models pulled under another id (`hf://ORG/REPO` ->
    /// `hf.co/ORG/REPO:Q4_K_M`).
    aliases: std::sync::RwLock<HashMap<String, String>>,
    /// The auto-pull under way, if any.
    pull_state: Arc<std::sync::Mutex<Option<PullState>>>,
}

/// A model to serve from now on, found after start-up.
pub struct NewModel {
    /// How to serve it.
    pub spec: ModelSpec,
    /// Its shape from its metadata; without one it is sized from its files.
    pub shape: Option<ModelShape>,
}

impl ModelRegistry {
    /// Checks every spec against the disk and estimates its memory (no loading yet); the first
    /// problem is the error. Must be called inside a tokio runtime. Models marked `preload`
    /// start loading at once.
    pub fn new(specs: &[ModelSpec], residency: Residency) -> Result<Self> {
        let mut slots = BTreeMap::new();
        let mut plans = Vec::new();
        for spec in specs {
            let fetched_on_load = residency.fetched_on_load.contains(&spec.id);
            let shape = residency.shapes.get(&spec.id).cloned();
            let (slot, plan) = plan_slot(spec, shape, fetched_on_load, residency.device)?;
            plans.push(plan);
            if slots.insert(spec.id.clone(), Arc::new(slot)).is_some() {
                return Err(Error::Config(format!(
                    "model id `{}` is declared twice",
                    spec.id
                )));
            }
        }
        let slots: Slots = Arc::new(std::sync::RwLock::new(slots));
        let loader = MistralLoader {
            slots: slots.clone(),
            preflight: residency.preflight,
            device: residency.device,
            probe: residency.probe.clone(),
            loads: Arc::default(),
        };
        // One entry per device the scheduler keeps books for, with no probe too.
        let devices = match residency.devices {
            devices if devices.is_empty() => residency::devices::budgets(None, &[], "no probe"),
            devices => devices,
        };
        let scheduler = Scheduler::new(
            SchedulerSettings {
                budgets: devices.iter().map(|d| d.budget_bytes).collect(),
                keep_alive: residency.keep_alive,
            },
            plans,
            Arc::new(loader),
            residency.policy,
        );
        if let Some(probe) = residency.probe {
            tokio::spawn(watch_devices(scheduler.clone(), probe));
        }
        for spec in specs.iter().filter(|s| s.preload) {
            let scheduler = scheduler.clone();
            let id = spec.id.clone();
            tokio::spawn(async move {
                if let Err(e) = scheduler.load(&id).await {
                    tracing::error!(model = %id, error = %e, "preloading failed");
                }
            });
        }
        Ok(Self {
            slots,
            scheduler,
            device: residency.device,
            devices,
            gpus_seen: residency.gpus_seen,
            auto_pull: residency.auto_pull,
            pulling: tokio::sync::Mutex::new(()),
            aliases: Default::default(),
            pull_state: Arc::default(),
        })
    }

    /// The model called `id` (or pulled for that name).
    pub fn get(&self, id: &str) -> Result<Arc<ModelSlot>> {
        let slots = read(&self.slots);
        slots
            .get(id)
            .or_else(|| slots.get(read(&self.aliases).get(id)?))
            .cloned()
            .ok_or_else(|| Error::ModelNotFound(id.to_string()))
    }

    /// The model called `name`; with auto-pull on, one the server lacks is pulled first (the
    /// request waits; concurrent requests share the pull). A failed pull fails this request.
    pub async fn find(&self, name: &str) -> Result<Arc<ModelSlot>> {
        if let Ok(slot) = self.get(name) {
            return Ok(slot);
        }
        let Some(pull) = &self.auto_pull else {
            return Err(Error::ModelNotFound(name.to_string()));
        };
        let _one_at_a_time = self.pulling.lock().await;
        if let Ok(slot) = self.get(name) {
            return Ok(slot);
        }
        tracing::info!(model = %name, "pulling a model a request named");
        let (progress, mut updates) = tokio::sync::mpsc::unbounded_channel();
        let state = self.pull_state.clone();
        let watched = name.to_string();
        let watch = tokio::spawn(async move {
            while let Some(update) = updates.recv().await {
                let update: crate::catalog::PullUpdate = update;
                *state.lock().unwrap_or_else(|e| e.into_inner()) = Some(PullState {
                    model: watched.clone(),
                    status: update.status,
                    total: update.total,
                    completed: update.completed,
                });
            }
        });
        let pulled = pull(name, progress).await;
        let _ = watch.await;
        *self.pull_state.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let model = pulled?;
        let id = model.spec.id.clone();
        let slot = match self.get(&id) {
            Ok(slot) => slot,
            Err(_) => self.add(model)?,
        };
        if id != name {
            write(&self.aliases).insert(name.to_string(), id);
        }
        Ok(slot)
    }

    /// Every model, by id.
    pub fn all(&self) -> Vec<Arc<ModelSlot>> {
        read(&self.slots).values().cloned().collect()
    }

    /// Serves `model` from now on (a model pulled or copied while the server runs). Its files
    /// must be on disk.
    pub fn add(&self, model: NewModel) -> Result<Arc<ModelSlot>> {
        let (slot, plan) = plan_slot(&model.spec, model.shape, false, self.device)?;
        let slot = Arc::new(slot);
        let mut slots = write(&self.slots);
        if slots.contains_key(&model.spec.id) {
            return Err(Error::ModelBusy(format!(
                "model `{}` already exists",
                model.spec.id
            )));
        }
        self.scheduler.add(plan)?;
        slots.insert(model.spec.id.clone(), slot.clone());
        tracing::info!(model = %model.spec.id, estimated_mib = slot.estimate.total >> 20, "model added");
        Ok(slot)
    }

    /// Stops serving `id`, which must not be loaded or in use: requests for it then get 404.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut slots = write(&self.slots);
        self.scheduler.remove(id)?;
        slots.remove(id);
        write(&self.aliases).retain(|_, to| to != id);
        tracing::info!(model = %id, "model removed");
        Ok(())
    }

    /// Takes a place in `id`'s queue, then waits until the model is loaded (loading it if
    /// needed). `keep_alive` overrides the model's own for the time after this request.
    pub async fn admit(&self, id: &str, keep_alive: Option<KeepAlive>) -> Result<Admitted> {
        self.admit_as(id, keep_alive, false).await
    }

    /// [`Self::admit`], and then waits until no other request uses the model, and keeps it so
    /// until the answer is over: for a job that reads a prompt's raw logits.
    pub async fn admit_alone(&self, id: &str, keep_alive: Option<KeepAlive>) -> Result<Admitted> {
        self.admit_as(id, keep_alive, true).await
    }

    async fn admit_as(
        &self,
        id: &str,
        keep_alive: Option<KeepAlive>,
        alone: bool,
    ) -> Result<Admitted> {
        let slot = self.find(id).await?;
        let id = slot.spec.id.as_str();
        let entered = slot.admission.enter(id).await?;
        let lease = self.scheduler.acquire(id, keep_alive).await?;
        let turn = if alone {
            Turn::Alone(slot.turns.clone().write_owned().await)
        } else {
            Turn::Shared(slot.turns.clone().read_owned().await)
        };
        Ok(Admitted {
            lease,
            turn: tokio::sync::Mutex::new(Some(turn)),
            turns: slot.turns.clone(),
            _slot: entered,
            context_length: slot.load_settings.context,
        })
    }

    /// The auto-pull under way, if any (for `/admin/status`).
    pub fn pulling(&self) -> Option<PullState> {
        self.pull_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The scheduler, for status and admin actions.
    pub fn scheduler(&self) -> &Scheduler<LoadedModel> {
        &self.scheduler
    }

    /// Every model's state and the budget.
    pub fn status(&self) -> ResidencyStatus {
        self.scheduler.status()
    }

    /// Each device's budget as decided at start-up, and where it came from: one for each of
    /// the scheduler's devices, in its order.
    pub fn device_budgets(&self) -> &[DeviceBudget] {
        &self.devices
    }

    /// NVIDIA GPUs this build sees but does not run models on.
    pub fn gpus_seen(&self) -> &[DeviceMemory] {
        &self.gpus_seen
    }

    /// Each model with what the scheduler says about it, by id.
    pub fn slots_with_residency(
        &self,
        status: ResidencyStatus,
    ) -> Vec<(Arc<ModelSlot>, residency::ModelResidency)> {
        let slots = read(&self.slots);
        status
            .models
            .into_iter()
            .filter_map(|residency| Some((slots.get(&residency.id)?.clone(), residency)))
            .collect()
    }

    /// Stops admitting requests to every model.
    pub fn close(&self) {
        for slot in read(&self.slots).values() {
            slot.admission.close();
        }
        self.scheduler.close();
    }
}

/// A slot for `spec` and its plan for the scheduler, its estimate from `shape` (or, without
/// one, from its file sizes).
fn plan_slot(
    spec: &ModelSpec,
    shape: Option<ModelShape>,
    fetched_on_load: bool,
    device: Device,
) -> Result<(ModelSlot, ModelPlan)> {
    spec.validate()?;
    let source = if fetched_on_load {
        expected_source(spec)?
    } else {
        resolve_source(spec)?
    };
    let shape = shape.unwrap_or_else(|| shape_from_file_sizes(&source));
    let load_settings = LoadSettings {
        context: residency::context_for(spec.context_length, &shape),
        sequences: spec.max_concurrency as u64,
        device,
        prefix_cache_mb: spec.prefix_cache_mb,
    };
    let estimate = estimate(&shape, &load_settings);
    let plan = ModelPlan {
        id: spec.id.clone(),
        estimate: estimate.total,
        keep_alive: spec.keep_alive,
    };
    let slot = ModelSlot {
        spec: spec.clone(),
        estimate,
        load_settings,
        shape,
        source,
        fetched_on_load,
        admission: Admission::new(spec.max_concurrency, spec.max_queue),
        turns: Arc::default(),
    };
    Ok((slot, plan))
}

fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Without metadata, a model is sized from its files: weights as big as the files, the same
/// again for what the runtime derives from them, and the KV cache of a typical model twice the
/// size a 4.5-bit quantization of these bytes would suggest.
fn shape_from_file_sizes(source: &ModelSource) -> ModelShape {
    let bytes = match source {
        ModelSource::Gguf { dir, file } => file_size(&dir.join(file)),
        ModelSource::Safetensors(dir) | ModelSource::Embedding(dir) => dir_size(dir),
    };
    let mut shape = estimate::hypothetical_shape((bytes * 2 * 8 / 9).max(1), 4.5, None);
    shape.weight_bytes = bytes;
    shape.runtime_weight_bytes = bytes;
    shape
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| file_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
