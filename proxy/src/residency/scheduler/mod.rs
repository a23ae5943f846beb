//! The residency scheduler: which models are in memory. A model loads on its first request,
//! within the memory budget; requests wait while it loads; idle models are unloaded after their
//! keep-alive, or earlier to make room for a model that is asked for. Loads and unloads run one
//! at a time, so each load's memory can be measured.
//!
//! All decisions are taken under one lock over [`Books`], and every change of state bumps a
//! `watch` counter that waiting requests and the keep-alive reaper re-check on, so no wake-up is
//! lost. Deadlock freedom rests on two rules: a request waits only for models that are loading,
//! unloading or serving (each of which finishes), and only the oldest model waiting for memory
//! may unload others for it, so two waiting models never evict each other in turn.

mod books;
mod decisions;
mod lease;
mod status;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::events::{Event, EventLog};
use super::keep_alive::KeepAlive;
use super::policy::PlacementPolicy;
use crate::{Error, Result};
use books::{Books, DeviceBooks, Entry, Phase};
pub use lease::Lease;
use lease::{InUse, Waiting};
pub use status::{DeviceResidency, ModelResidency, ResidencyStatus, UnloadOutcome};

/// A model the loader has loaded, with what its load measurably took.
pub struct Loaded<M> {
    /// The model.
    pub model: Arc<M>,
    /// Bytes the load took, where that can be measured (resident memory on the CPU).
    pub measured: Option<u64>,
}

/// Loads and unloads models for the scheduler: mistral.rs in the server, a fake in tests.
pub trait ModelLoader<M>: Send + Sync + 'static {
    /// Loads `id` onto `device` (an index into [`SchedulerSettings::budgets`]); the error is
    /// the reason shown to clients.
    fn load(
        &self,
        id: &str,
        device: usize,
    ) -> BoxFuture<'static, std::result::Result<Loaded<M>, String>>;
    /// Frees `model`, which no request holds any more, and gives its memory back to the OS.
    fn unload(&self, id: &str, model: Arc<M>) -> BoxFuture<'static, ()>;
}

/// A model the scheduler manages.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    /// Its id.
    pub id: String,
    /// Its estimated memory need in bytes.
    pub estimate: u64,
    /// Its keep-alive; `None` takes the scheduler's default.
    pub keep_alive: Option<KeepAlive>,
}

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Each device's budget: bytes the models placed on it may take together (`None` is no
    /// limit). A model is placed whole on one device. An empty list is one device without a
    /// limit.
    pub budgets: Vec<Option<u64>>,
    /// Keep-alive of models that set none.
    pub keep_alive: KeepAlive,
}

impl SchedulerSettings {
    /// One device with `budget`.
    pub fn one_device(budget: Option<u64>, keep_alive: KeepAlive) -> Self {
        Self {
            budgets: vec![budget],
            keep_alive,
        }
    }
}

struct Inner<M> {
    settings: SchedulerSettings,
    books: Mutex<Books<M>>,
    changes: watch::Sender<u64>,
    loader: Arc<dyn ModelLoader<M>>,
    policy: Arc<dyn PlacementPolicy>,
    /// One load or unload at a time: they would only fight over memory bandwidth, and a
    /// load's resident-memory delta is only its own when nothing else loads or unloads.
    one_at_a_time: tokio::sync::Mutex<()>,
    started: Instant,
}

/// Decides which models are loaded. Cheap to clone.
pub struct Scheduler<M> {
    inner: Arc<Inner<M>>,
}

impl<M> Clone for Scheduler<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Send + Sync + 'static> Scheduler<M> {
    /// A scheduler for `models`; it must be created inside a tokio runtime, where its keep-alive
    /// reaper runs until the scheduler is dropped or closed.
    pub fn new(
        settings: SchedulerSettings,
        models: Vec<ModelPlan>,
        loader: Arc<dyn ModelLoader<M>>,
        policy: Arc<dyn PlacementPolicy>,
    ) -> Self {
        let now = Instant::now();
        let mut budgets = settings.budgets.clone();
        if budgets.is_empty() {
            budgets.push(None);
        }
        let devices = budgets
            .into_iter()
            .map(|budget| DeviceBooks {
                budget,
                limit: budget,
                reserved: 0,
            })
            .collect();
        let entries = models
            .into_iter()
            .map(|plan| {
                let entry = Entry::new(&plan, settings.keep_alive, now);
                (plan.id, entry)
            })
            .collect();
        let inner = Arc::new(Inner {
            settings,
            books: Mutex::new(Books {
                models: entries,
                devices,
                room_queue: VecDeque::new(),
                events: EventLog::new(4096),
                closed: false,
            }),
            changes: watch::Sender::new(0),
            loader,
            policy,
            one_at_a_time: tokio::sync::Mutex::new(()),
            started: now,
        });
        tokio::spawn(decisions::reap_idle_models(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Waits until `id` is loaded (loading it, and unloading idle models to make room, if
    /// needed) and holds it for one request. `keep_alive` overrides the model's own for the
    /// time after this request. A model larger than the whole budget fails at once.
    pub async fn acquire(&self, id: &str, keep_alive: Option<KeepAlive>) -> Result<Lease<M>> {
        let mut changes = self.inner.changes.subscribe();
        let _waiting = self.start_waiting(id)?;
        loop {
            {
                let mut books = self.inner.lock();
                if books.closed {
                    return Err(Error::ShuttingDown);
                }
                let entry = books.models.get_mut(id).expect("checked in start_waiting");
                match &entry.phase {
                    Phase::Loaded(model) => {
                        let model = model.clone();
                        entry.in_flight += 1;
                        entry.requests += 1;
                        entry.expires = None;
                        let keep_alive = keep_alive.unwrap_or(entry.keep_alive);
                        return Ok(Lease {
                            model,
                            _in_use: InUse {
                                inner: self.inner.clone(),
                                id: id.to_string(),
                                keep_alive,
                            },
                        });
                    }
                    Phase::Failed(reason) => {
                        return Err(Error::ModelUnavailable {
                            model: id.to_string(),
                            reason: reason.clone(),
                        })
                    }
                    Phase::Loading | Phase::Unloading => {}
                    Phase::Available => {
                        self.inner.place(&mut books, id)?;
                    }
                }
            }
            changes.changed().await.map_err(|_| Error::ShuttingDown)?;
        }
    }

    fn start_waiting(&self, id: &str) -> Result<Waiting<M>> {
        let mut books = self.inner.lock();
        let entry = books
            .models
            .get_mut(id)
            .ok_or_else(|| Error::ModelNotFound(id.to_string()))?;
        entry.waiting += 1;
        Ok(Waiting {
            inner: self.inner.clone(),
            id: id.to_string(),
        })
    }

    /// Loads `id` now (a failed model gets a new try) and starts its keep-alive.
    pub async fn load(&self, id: &str) -> Result<()> {
        {
            let mut books = self.inner.lock();
            let entry = books
                .models
                .get_mut(id)
                .ok_or_else(|| Error::ModelNotFound(id.to_string()))?;
            if matches!(entry.phase, Phase::Failed(_)) {
                entry.phase = Phase::Available;
            }
        }
        self.acquire(id, None).await.map(drop)
    }

    /// Unloads `id` once no request holds it.
    pub async fn unload(&self, id: &str) -> Result<UnloadOutcome> {
        let mut changes = self.inner.changes.subscribe();
        {
            let mut books = self.inner.lock();
            let entry = books
                .models
                .get_mut(id)
                .ok_or_else(|| Error::ModelNotFound(id.to_string()))?;
            match entry.phase {
                Phase::Available | Phase::Failed(_) => return Ok(UnloadOutcome::Unloaded),
                Phase::Loaded(_) if entry.idle() => {
                    self.inner.start_unload(&mut books, id, "requested");
                }
                Phase::Unloading => {}
                Phase::Loading | Phase::Loaded(_) => {
                    entry.unload_requested = true;
                    drop(books);
                    self.inner.bump();
                    return Ok(UnloadOutcome::WhenIdle);
                }
            }
        }
        loop {
            if !matches!(self.inner.lock().models[id].phase, Phase::Unloading) {
                return Ok(UnloadOutcome::Unloaded);
            }
            changes.changed().await.map_err(|_| Error::ShuttingDown)?;
        }
    }

    /// Starts managing a model that appeared after start-up (pulled, or copied to a new name).
    pub fn add(&self, plan: ModelPlan) -> Result<()> {
        let mut books = self.inner.lock();
        if books.models.contains_key(&plan.id) {
            return Err(Error::ModelBusy(format!(
                "model `{}` already exists",
                plan.id
            )));
        }
        let entry = Entry::new(&plan, self.inner.settings.keep_alive, Instant::now());
        books.models.insert(plan.id, entry);
        Ok(())
    }

    /// Stops managing `id`, which must be unloaded with no request holding or waiting for it.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut books = self.inner.lock();
        let entry = books
            .models
            .get(id)
            .ok_or_else(|| Error::ModelNotFound(id.to_string()))?;
        let unloaded = matches!(entry.phase, Phase::Available | Phase::Failed(_));
        if !unloaded || entry.in_flight > 0 || entry.waiting > 0 {
            return Err(Error::ModelBusy(format!(
                "model `{id}` is {}; unload it first (keep_alive 0, or POST \
                 /admin/models/{id}/unload)",
                entry.phase.name()
            )));
        }
        books.models.remove(id);
        Ok(())
    }

    /// Every model's state and the budget.
    pub fn status(&self) -> ResidencyStatus {
        let books = self.inner.lock();
        let now = Instant::now();
        let models = books
            .models
            .iter()
            .map(|(id, e)| ModelResidency {
                id: id.clone(),
                state: e.phase.name(),
                device: e.device,
                estimated_bytes: e.estimate,
                measured_bytes: e.measured,
                in_flight: e.in_flight,
                waiting: e.waiting,
                keep_alive: e.keep_alive,
                expires_in_ms: e
                    .expires
                    .filter(|_| e.idle())
                    .map(|t| t.saturating_duration_since(now).as_millis() as u64),
                idle_ms: e
                    .idle()
                    .then(|| now.saturating_duration_since(e.last_used).as_millis() as u64),
                loaded_ms: e
                    .loaded_at
                    .filter(|_| matches!(e.phase, Phase::Loaded(_)))
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64),
                loads: e.loads,
                requests: e.requests,
                error: match &e.phase {
                    Phase::Failed(reason) => Some(reason.clone()),
                    _ => None,
                },
            })
            .collect();
        let devices: Vec<DeviceResidency> = books
            .devices
            .iter()
            .enumerate()
            .map(|(index, d)| DeviceResidency {
                index,
                budget_bytes: d.budget,
                limit_bytes: d.limit,
                reserved_bytes: d.reserved,
            })
            .collect();
        ResidencyStatus {
            budget_bytes: devices.iter().map(|d| d.limit_bytes).sum::<Option<u64>>(),
            reserved_bytes: books.reserved(),
            devices,
            waiting_for_memory: books.room_queue.iter().cloned().collect(),
            models,
        }
    }

    /// Sets what loads may reserve on `device` from now on: its budget, or `available` bytes
    /// when that is less, because other processes took memory porten counted on. When the
    /// limit drops below what is reserved there, idle models on it are unloaded (reason
    /// `budget_shrunk`); busy ones finish first and no load starts there until it fits.
    /// `None` gives the device its whole budget back.
    pub fn limit_device(&self, device: usize, available: Option<u64>) {
        self.inner.limit_device(device, available);
    }

    /// The model `id` if it is loaded now, to read its state (not to serve with: that takes
    /// [`Self::acquire`]).
    pub fn loaded(&self, id: &str) -> Option<Arc<M>> {
        match &self.inner.lock().models.get(id)?.phase {
            Phase::Loaded(model) => Some(model.clone()),
            _ => None,
        }
    }

    /// The event log from `since` on.
    pub fn events(&self, since: u64) -> Vec<Event> {
        self.inner.lock().events.since(since)
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Refuses new work: waiting and future requests fail with [`Error::ShuttingDown`].
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.bump();
    }
}

/// A loader for unit tests whose loads finish at once and measure nothing.
#[cfg(test)]
pub(crate) struct Immediate;

#[cfg(test)]
impl ModelLoader<()> for Immediate {
    fn load(
        &self,
        _id: &str,
        _device: usize,
    ) -> BoxFuture<'static, std::result::Result<Loaded<()>, String>> {
        use futures::FutureExt;
        async {
            Ok(Loaded {
                model: Arc::new(()),
                measured: None,
            })
        }
        .boxed()
    }
    fn unload(&self, _id: &str, _model: Arc<()>) -> BoxFuture<'static, ()> {
        use futures::FutureExt;
        async {}.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::residency::LeastRecentlyUsed;

    fn plan(id: &str) -> ModelPlan {
        ModelPlan {
            id: id.into(),
            estimate: 10,
            keep_alive: None,
        }
    }

    #[tokio::test]
    async fn models_added_later_load_and_only_unloaded_ones_are_removed() {
        let scheduler = Scheduler::new(
            SchedulerSettings::one_device(Some(100), KeepAlive::Forever),
            vec![plan("a")],
            Arc::new(Immediate),
            Arc::new(LeastRecentlyUsed),
        );
        assert!(matches!(scheduler.add(plan("a")), Err(Error::ModelBusy(_))));
        scheduler.add(plan("b")).unwrap();
        scheduler.load("b").await.unwrap();
        let busy = scheduler.remove("b").unwrap_err();
        assert!(busy.to_string().contains("loaded"), "{busy}");
        scheduler.unload("b").await.unwrap();
        scheduler.remove("b").unwrap();
        assert!(matches!(
            scheduler.acquire("b", None).await,
            Err(Error::ModelNotFound(_))
        ));
        assert!(matches!(
            scheduler.remove("b"),
            Err(Error::ModelNotFound(_))
        ));
    }
}
