//! The scheduler's books: each model's phase, charge and counters, and what all of them
//! reserve together. Only read and changed under the scheduler's one lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::super::events::EventLog;
use super::super::keep_alive::KeepAlive;
use super::super::policy::PlacementCandidate;

pub(super) enum Phase<M> {
    Available,
    Loading,
    Loaded(Arc<M>),
    Unloading,
    Failed(String),
}

impl<M> Phase<M> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Available => "available",
            Phase::Loading => "loading",
            Phase::Loaded(_) => "loaded",
            Phase::Unloading => "unloading",
            Phase::Failed(_) => "failed",
        }
    }
}

pub(super) struct Entry<M> {
    pub(super) estimate: u64,
    /// The device it is on, or was placed on last (0 until it is first placed).
    pub(super) device: usize,
    pub(super) measured: Option<u64>,
    pub(super) keep_alive: KeepAlive,
    pub(super) phase: Phase<M>,
    pub(super) in_flight: usize,
    pub(super) waiting: usize,
    pub(super) last_used: Instant,
    /// When its last load finished.
    pub(super) loaded_at: Option<Instant>,
    pub(super) expires: Option<Instant>,
    pub(super) unload_requested: bool,
    pub(super) loads: u64,
    pub(super) requests: u64,
}

impl<M> Entry<M> {
    /// A model not loaded yet.
    pub(super) fn new(plan: &super::ModelPlan, keep_alive: KeepAlive, now: Instant) -> Self {
        Self {
            estimate: plan.estimate,
            device: 0,
            measured: None,
            keep_alive: plan.keep_alive.unwrap_or(keep_alive),
            phase: Phase::Available,
            in_flight: 0,
            waiting: 0,
            last_used: now,
            loaded_at: None,
            expires: None,
            unload_requested: false,
            loads: 0,
            requests: 0,
        }
    }

    /// What the model is charged against the budget: the larger of estimate and measurement.
    pub(super) fn charge(&self) -> u64 {
        self.estimate.max(self.measured.unwrap_or(0))
    }

    pub(super) fn idle(&self) -> bool {
        matches!(self.phase, Phase::Loaded(_)) && self.in_flight == 0 && self.waiting == 0
    }
}

/// One device's books: models are placed on one device each, within its limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct DeviceBooks {
    /// The budget it was given at start-up; `None` is no limit.
    pub(super) budget: Option<u64>,
    /// What loads may reserve now: the budget, or less while other processes hold memory
    /// porten counted on (see `Scheduler::limit_device`).
    pub(super) limit: Option<u64>,
    /// Sum of the charges of its models that hold memory (loading, loaded, unloading).
    pub(super) reserved: u64,
}

impl DeviceBooks {
    /// Bytes a load may still reserve on it; `u64::MAX` without a limit.
    pub(super) fn free(&self) -> u64 {
        self.limit
            .map_or(u64::MAX, |l| l.saturating_sub(self.reserved))
    }
}

pub(super) struct Books<M> {
    pub(super) models: BTreeMap<String, Entry<M>>,
    /// Each device's budget, limit and reservations, by index.
    pub(super) devices: Vec<DeviceBooks>,
    /// Models waiting for memory, oldest first.
    pub(super) room_queue: VecDeque<String>,
    pub(super) events: EventLog,
    pub(super) closed: bool,
}

impl<M> Books<M> {
    /// Reservations of every device together.
    pub(super) fn reserved(&self) -> u64 {
        self.devices.iter().map(|d| d.reserved).sum()
    }
}

/// The idle models on `device` but `except`, as the placement policy sees them.
pub(super) fn idle_candidates<M>(
    books: &Books<M>,
    device: usize,
    except: &str,
) -> Vec<PlacementCandidate> {
    let now = Instant::now();
    books
        .models
        .iter()
        .filter(|(id, e)| e.idle() && e.device == device && id.as_str() != except)
        .map(|(id, e)| PlacementCandidate {
            model: id.clone(),
            bytes: e.charge(),
            idle_for: now.saturating_duration_since(e.last_used),
            requests: e.requests,
        })
        .collect()
}
