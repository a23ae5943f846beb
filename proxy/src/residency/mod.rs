//! Memory-budgeted model residency: estimating what a model needs, deciding which models are
//! loaded within each device's budget (`PORTEN_VRAM_BUDGET_MB`, else read from the device),
//! and unloading idle ones.

pub mod devices;
pub mod estimate;
pub mod events;
pub mod keep_alive;
pub mod memory;
pub mod policy;
pub mod scheduler;

pub use estimate::{estimate, Device, LoadSettings, MemoryEstimate, ModelShape};
pub use events::{Event, EventKind};
pub use keep_alive::KeepAlive;
pub use policy::{
    LeastRecentlyUsed, PlacementCandidate, PlacementPolicy, PlacementRequest, PolicyFailure,
};
pub use scheduler::{
    DeviceResidency, Lease, Loaded, ModelLoader, ModelPlan, ModelResidency, ResidencyStatus,
    Scheduler, SchedulerSettings, UnloadOutcome,
};

/// Context length a model is sized for when its configuration names none (Ollama's default),
/// capped at what the model was trained for.
pub const DEFAULT_CONTEXT: u64 = 4096;

/// The context a model is loaded with: the configured one, else [`DEFAULT_CONTEXT`] capped at the
/// trained length.
pub fn context_for(configured: Option<u64>, shape: &ModelShape) -> u64 {
    configured.unwrap_or_else(|| {
        shape
            .trained_context
            .map_or(DEFAULT_CONTEXT, |t| t.min(DEFAULT_CONTEXT))
    })
}
