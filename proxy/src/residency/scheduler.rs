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

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use opentelemetry::KeyValue;
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use super::events::{Event, EventKind, EventLog};
use super::keep_alive::KeepAlive;
use super::policy::{checked_victims, PlacementCandidate, PlacementPolicy, PlacementRequest};
use crate::telemetry::instruments;
use crate::{Error, Result};

/// A model the loader has loaded, with what its load measurably took.
pub struct Loaded<M> {
    /// The model.
    pub model: Arc<M>,
    /// Bytes the load took, where that can be measured (resident memory on the CPU).
    pub measured: Option<u64>,
}

/// Loads and unloads models for the scheduler: mistral.rs in the server, a fake in tests.
pub trait ModelLoader<M>: Send + Sync + 'static {
    /// Loads `id`; the error is the reason shown to clients.
    fn load(&self, id: &str) -> BoxFuture<'static, std::result::Result<Loaded<M>, String>>;
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
#[derive(Debug, Clone, Copy)]
pub struct SchedulerSettings {
    /// Bytes loaded models may take together; `None` is no limit.
    pub budget: Option<u64>,
    /// Keep-alive of models that set none.
    pub keep_alive: KeepAlive,
}

enum Phase<M> {
    Available,
    Loading,
    Loaded(Arc<M>),
    Unloading,
    Failed(String),
}

impl<M> Phase<M> {
    fn name(&self) -> &'static str {
        match self {
            Phase::Available => "available",
            Phase::Loading => "loading",
            Phase::Loaded(_) => "loaded",
            Phase::Unloading => "unloading",
            Phase::Failed(_) => "failed",
        }
    }
}

struct Entry<M> {
    estimate: u64,
    measured: Option<u64>,
    keep_alive: KeepAlive,
    phase: Phase<M>,
    in_flight: usize,
    waiting: usize,
    last_used: Instant,
    expires: Option<Instant>,
    unload_requested: bool,
    loads: u64,
    requests: u64,
}

impl<M> Entry<M> {
    /// What the model is charged against the budget: the larger of estimate and measurement.
    fn charge(&self) -> u64 {
        self.estimate.max(self.measured.unwrap_or(0))
    }

    fn idle(&self) -> bool {
        matches!(self.phase, Phase::Loaded(_)) && self.in_flight == 0 && self.waiting == 0
    }
}

struct Books<M> {
    models: BTreeMap<String, Entry<M>>,
    /// Sum of the charges of models that hold memory (loading, loaded, unloading).
    reserved: u64,
    /// Models waiting for memory, oldest first.
    room_queue: VecDeque<String>,
    events: EventLog,
    closed: bool,
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

/// A request's hold on a loaded model: while any lease exists the model is not unloaded.
/// Dropping the last one starts the model's keep-alive.
pub struct Lease<M: Send + Sync + 'static> {
    // Field order matters: the model is dropped before the scheduler hears the lease is gone,
    // so an unload never races a request still holding the model.
    model: Arc<M>,
    _in_use: InUse<M>,
}

impl<M: Send + Sync + 'static> std::ops::Deref for Lease<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

struct InUse<M: Send + Sync + 'static> {
    inner: Arc<Inner<M>>,
    id: String,
    keep_alive: KeepAlive,
}

impl<M: Send + Sync + 'static> Drop for InUse<M> {
    fn drop(&mut self) {
        let mut books = self.inner.lock();
        if let Some(entry) = books.models.get_mut(&self.id) {
            entry.in_flight -= 1;
            let now = Instant::now();
            entry.last_used = now;
            if entry.in_flight == 0 {
                // The last request to finish sets the model's time to live, as in Ollama.
                entry.expires = self.keep_alive.duration().map(|d| now + d);
            }
        }
        drop(books);
        self.inner.bump();
    }
}

/// Counts a request waiting for a model, and takes the count back if the request gives up.
struct Waiting<M: Send + Sync + 'static> {
    inner: Arc<Inner<M>>,
    id: String,
}

impl<M: Send + Sync + 'static> Drop for Waiting<M> {
    fn drop(&mut self) {
        let mut books = self.inner.lock();
        let Books {
            models, room_queue, ..
        } = &mut *books;
        if let Some(entry) = models.get_mut(&self.id) {
            entry.waiting -= 1;
            if entry.waiting == 0 {
                // Nobody wants it any more: it must not hold up the models queued behind it.
                room_queue.retain(|m| m != &self.id);
            }
        }
        drop(books);
        self.inner.bump();
    }
}

/// One model as the scheduler sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResidency {
    /// Its id.
    pub id: String,
    /// `available`, `loading`, `loaded`, `unloading` or `failed`.
    pub state: &'static str,
    /// The estimate in bytes.
    pub estimated_bytes: u64,
    /// The largest measurement of a load in bytes, once loaded.
    pub measured_bytes: Option<u64>,
    /// Requests being served.
    pub in_flight: usize,
    /// Requests waiting for it to load.
    pub waiting: usize,
    /// Its keep-alive (`-1`: forever).
    pub keep_alive: KeepAlive,
    /// Milliseconds until it is unloaded for being idle, when that is scheduled.
    pub expires_in_ms: Option<u64>,
    /// Times it was loaded.
    pub loads: u64,
    /// Requests it served.
    pub requests: u64,
    /// Why its last load failed.
    pub error: Option<String>,
}

/// The whole scheduler at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ResidencyStatus {
    /// The budget in bytes; `None` is no limit.
    pub budget_bytes: Option<u64>,
    /// Bytes reserved for loading, loaded and unloading models.
    pub reserved_bytes: u64,
    /// Models waiting for memory, oldest first.
    pub waiting_for_memory: Vec<String>,
    /// Every model.
    pub models: Vec<ModelResidency>,
}

/// What an unload request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnloadOutcome {
    /// The model was unloaded (or was not loaded).
    Unloaded,
    /// The model is busy or loading; it is unloaded as soon as it is idle.
    WhenIdle,
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
        let entries = models
            .into_iter()
            .map(|plan| {
                let entry = Entry {
                    estimate: plan.estimate,
                    measured: None,
                    keep_alive: plan.keep_alive.unwrap_or(settings.keep_alive),
                    phase: Phase::Available,
                    in_flight: 0,
                    waiting: 0,
                    last_used: now,
                    expires: None,
                    unload_requested: false,
                    loads: 0,
                    requests: 0,
                };
                (plan.id, entry)
            })
            .collect();
        let inner = Arc::new(Inner {
            settings,
            books: Mutex::new(Books {
                models: entries,
                reserved: 0,
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
        tokio::spawn(reap_idle_models(Arc::downgrade(&inner)));
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
                estimated_bytes: e.estimate,
                measured_bytes: e.measured,
                in_flight: e.in_flight,
                waiting: e.waiting,
                keep_alive: e.keep_alive,
                expires_in_ms: e
                    .expires
                    .filter(|_| e.idle())
                    .map(|t| t.saturating_duration_since(now).as_millis() as u64),
                loads: e.loads,
                requests: e.requests,
                error: match &e.phase {
                    Phase::Failed(reason) => Some(reason.clone()),
                    _ => None,
                },
            })
            .collect();
        ResidencyStatus {
            budget_bytes: self.inner.settings.budget,
            reserved_bytes: books.reserved,
            waiting_for_memory: books.room_queue.iter().cloned().collect(),
            models,
        }
    }

    /// The event log from `since` on.
    pub fn events(&self, since: u64) -> Vec<Event> {
        self.inner.lock().events.since(since)
    }

    /// Refuses new work: waiting and future requests fail with [`Error::ShuttingDown`].
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.bump();
    }
}

impl<M: Send + Sync + 'static> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, Books<M>> {
        // A panic under the lock leaves the books as they were between two statements; serving
        // on is better than poisoning every later request.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn record(&self, books: &mut Books<M>, model: &str, kind: EventKind) {
        let reserved = books.reserved;
        books.events.push(self.now_ms(), model, kind, reserved);
    }

    /// Starts loading `id` if it fits, else queues it for memory and, when it is the oldest
    /// waiting, unloads idle models for it.
    fn place(self: &Arc<Self>, books: &mut Books<M>, id: &str) -> Result<()> {
        let need = books.models[id].charge();
        let Some(budget) = self.settings.budget else {
            self.start_load(books, id);
            return Ok(());
        };
        if need > budget {
            books.room_queue.retain(|m| m != id);
            self.record(books, id, EventKind::Refused { need });
            return Err(Error::WillNotFit {
                model: id.to_string(),
                need,
                budget,
            });
        }
        let free = budget.saturating_sub(books.reserved);
        if need <= free {
            books.room_queue.retain(|m| m != id);
            self.start_load(books, id);
            return Ok(());
        }
        if !books.room_queue.iter().any(|m| m == id) {
            books.room_queue.push_back(id.to_string());
        }
        if books.room_queue.front().map(String::as_str) != Some(id) {
            return Ok(());
        }
        let leaving: u64 = books
            .models
            .values()
            .filter(|e| matches!(e.phase, Phase::Unloading))
            .map(Entry::charge)
            .sum();
        if need <= free + leaving {
            return Ok(());
        }
        let request = PlacementRequest {
            model: id.to_string(),
            need,
            budget,
            free: free + leaving,
            candidates: idle_candidates(books, id),
        };
        // Evict only when the victims together make room; otherwise wait for busy models.
        if let Some(victims) = checked_victims(self.policy.as_ref(), &request) {
            for victim in victims {
                self.start_unload(books, &victim, "evicted");
            }
        }
        Ok(())
    }

    fn start_load(self: &Arc<Self>, books: &mut Books<M>, id: &str) {
        let entry = books.models.get_mut(id).expect("a known model");
        let charge = entry.charge();
        entry.phase = Phase::Loading;
        books.reserved += charge;
        self.record(
            books,
            id,
            EventKind::LoadStarted {
                reserved_for_model: charge,
            },
        );
        let inner = self.clone();
        let id = id.to_string();
        // A child of the request that asked for the model (a root span for preloads).
        let span = tracing::info_span!("model.load", model = %id, reserved_bytes = charge as i64);
        let load = async move {
            let loaded = {
                let _one = inner.one_at_a_time.lock().await;
                let started = Instant::now();
                let loaded = inner.loader.load(&id).await;
                let outcome = if loaded.is_ok() { "loaded" } else { "failed" };
                instruments().load_duration.record(
                    started.elapsed().as_secs_f64(),
                    &[
                        KeyValue::new("gen_ai.request.model", id.clone()),
                        KeyValue::new("porten.load.outcome", outcome),
                    ],
                );
                loaded
            };
            inner.finish_load(&id, loaded);
            inner.bump();
        };
        tokio::spawn(load.instrument(span));
    }

    fn finish_load(self: &Arc<Self>, id: &str, loaded: std::result::Result<Loaded<M>, String>) {
        let mut books = self.lock();
        let entry = books.models.get_mut(id).expect("a known model");
        let before = entry.charge();
        match loaded {
            Ok(Loaded { model, measured }) => {
                entry.measured = match (entry.measured, measured) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                entry.phase = Phase::Loaded(model);
                entry.loads += 1;
                entry.last_used = Instant::now();
                entry.expires = entry.keep_alive.duration().map(|d| Instant::now() + d);
                let (estimate, after) = (entry.estimate, entry.charge());
                books.reserved = books.reserved - before + after;
                self.record(&mut books, id, EventKind::Loaded { measured });
                if let Some(measured) = measured.filter(|m| *m > estimate) {
                    tracing::warn!(
                        model = id,
                        estimate,
                        measured,
                        "model took more memory than estimated"
                    );
                    self.record(
                        &mut books,
                        id,
                        EventKind::Underestimated { estimate, measured },
                    );
                    self.restore_budget(&mut books, id);
                }
            }
            Err(reason) => {
                entry.phase = Phase::Failed(reason.clone());
                books.reserved -= before;
                self.record(&mut books, id, EventKind::LoadFailed { reason });
            }
        }
    }

    /// After a measurement above its estimate pushed the reservations over the budget, unloads
    /// idle models until they fit again.
    fn restore_budget(self: &Arc<Self>, books: &mut Books<M>, loaded: &str) {
        let Some(budget) = self.settings.budget else {
            return;
        };
        if books.reserved <= budget {
            return;
        }
        let request = PlacementRequest {
            model: loaded.to_string(),
            need: books.reserved - budget,
            budget,
            free: 0,
            candidates: idle_candidates(books, loaded),
        };
        let victims = checked_victims(self.policy.as_ref(), &request)
            .unwrap_or_else(|| request.candidates.iter().map(|c| c.model.clone()).collect());
        for victim in victims {
            self.start_unload(books, &victim, "over_budget");
        }
    }

    fn start_unload(self: &Arc<Self>, books: &mut Books<M>, id: &str, reason: &'static str) {
        let entry = books.models.get_mut(id).expect("a known model");
        let Phase::Loaded(model) = std::mem::replace(&mut entry.phase, Phase::Unloading) else {
            unreachable!("only loaded models are unloaded");
        };
        entry.expires = None;
        entry.unload_requested = false;
        self.record(books, id, EventKind::UnloadStarted { reason });
        let inner = self.clone();
        let id = id.to_string();
        let span = tracing::info_span!("model.unload", model = %id, reason);
        instruments().unloads.add(
            1,
            &[
                KeyValue::new("gen_ai.request.model", id.clone()),
                KeyValue::new("porten.unload.reason", reason),
            ],
        );
        let unload = async move {
            {
                let _one = inner.one_at_a_time.lock().await;
                inner.loader.unload(&id, model).await;
            }
            let mut books = inner.lock();
            let entry = books.models.get_mut(&id).expect("a known model");
            let charge = entry.charge();
            entry.phase = Phase::Available;
            books.reserved -= charge;
            inner.record(&mut books, &id, EventKind::Unloaded { reason });
            drop(books);
            inner.bump();
        };
        tokio::spawn(unload.instrument(span));
    }

    /// Unloads idle models whose keep-alive ran out or whose unload was asked for; returns when
    /// the next one is due.
    fn reap(self: &Arc<Self>) -> Option<Instant> {
        let mut books = self.lock();
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (id, entry) in &books.models {
            if !entry.idle() {
                continue;
            }
            if entry.unload_requested {
                due.push((id.clone(), "requested"));
            } else if let Some(at) = entry.expires {
                if at <= now {
                    due.push((id.clone(), "idle"));
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        for (id, reason) in due {
            self.start_unload(&mut books, &id, reason);
        }
        next
    }
}

fn idle_candidates<M>(books: &Books<M>, except: &str) -> Vec<PlacementCandidate> {
    let now = Instant::now();
    books
        .models
        .iter()
        .filter(|(id, e)| e.idle() && id.as_str() != except)
        .map(|(id, e)| PlacementCandidate {
            model: id.clone(),
            bytes: e.charge(),
            idle_for: now.saturating_duration_since(e.last_used),
            requests: e.requests,
        })
        .collect()
}

async fn reap_idle_models<M: Send + Sync + 'static>(inner: Weak<Inner<M>>) {
    let mut changes = match inner.upgrade() {
        Some(inner) => inner.changes.subscribe(),
        None => return,
    };
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            if inner.lock().closed {
                return;
            }
            inner.reap()
        };
        // Wake at the next expiry, or when anything changes (a request finished, a model loaded).
        let sleep = next
            .map(|at| tokio::time::Instant::from_std(at))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep_until(sleep) => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
