//! What the scheduler tells operators: every model's state, and the outcome of an unload.

use serde::Serialize;

use super::super::keep_alive::KeepAlive;

/// One model as the scheduler sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResidency {
    /// Its id.
    pub id: String,
    /// `available`, `loading`, `loaded`, `unloading` or `failed`.
    pub state: &'static str,
    /// The device it is on, or was on last.
    pub device: usize,
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
    /// Milliseconds since its last request finished, while it is loaded and idle.
    pub idle_ms: Option<u64>,
    /// Milliseconds since it finished loading, while it is loaded.
    pub loaded_ms: Option<u64>,
    /// Times it was loaded.
    pub loads: u64,
    /// Requests it served.
    pub requests: u64,
    /// Why its last load failed.
    pub error: Option<String>,
}

/// One device's books at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceResidency {
    /// Its index (the CUDA ordinal on NVIDIA GPUs).
    pub index: usize,
    /// Its budget in bytes; `None` is no limit.
    pub budget_bytes: Option<u64>,
    /// What loads may reserve there now: the budget, or less while other processes hold
    /// memory porten counted on.
    pub limit_bytes: Option<u64>,
    /// Bytes reserved there for loading, loaded and unloading models.
    pub reserved_bytes: u64,
}

/// The whole scheduler at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ResidencyStatus {
    /// Every device's limit together, in bytes (their budgets, or less while other processes
    /// hold memory); `None` is no limit.
    pub budget_bytes: Option<u64>,
    /// Bytes reserved for loading, loaded and unloading models, on every device together.
    pub reserved_bytes: u64,
    /// Each device's budget, limit and reservations.
    pub devices: Vec<DeviceResidency>,
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
