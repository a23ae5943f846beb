//! The operator's view of the residency scheduler: `GET /admin/status` (budget, what is
//! reserved, every model's state and queue), `GET /admin/events?since=N` (the scheduler's event
//! log), and `POST /admin/models/{id}/load` / `/unload`.

use http::{Response, StatusCode};
use serde::Serialize;

use crate::http::respond::{json, Body};
use crate::http::ServerState;
use crate::residency::{ModelResidency, UnloadOutcome};
use crate::{Error, Result};

#[derive(Serialize)]
struct Status {
    budget_bytes: Option<u64>,
    reserved_bytes: u64,
    /// Each device: what it is, its budget and why, its limit now and what is reserved.
    devices: Vec<DeviceStatus>,
    /// NVIDIA GPUs a CPU build sees (it does not run models on them).
    gpus_seen: Vec<crate::residency::devices::DeviceMemory>,
    waiting_for_memory: Vec<String>,
    /// The pull a request waits for (`[hub] auto_pull`), if any.
    pulling: Option<crate::models::PullState>,
    models: Vec<ModelStatus>,
}

#[derive(Serialize)]
struct DeviceStatus {
    #[serde(flatten)]
    budget: crate::residency::devices::DeviceBudget,
    /// What loads may reserve there now: the budget, or less while other processes hold
    /// memory porten counted on.
    limit_bytes: Option<u64>,
    reserved_bytes: u64,
}

#[derive(Serialize)]
struct ModelStatus {
    #[serde(flatten)]
    residency: ModelResidency,
    /// Requests waiting for an engine slot.
    queued: usize,
    max_concurrency: usize,
    context_length: u64,
    estimate: crate::residency::MemoryEstimate,
    /// The engine's prefix cache while the model is loaded with one.
    prefix_cache: Option<crate::engine::prefix_cache::PrefixCacheStatus>,
}

/// `GET /admin/status`.
pub fn status(state: &ServerState) -> Response<Body> {
    let mut status = state.models.status();
    let (budget_bytes, reserved_bytes) = (status.budget_bytes, status.reserved_bytes);
    let waiting_for_memory = std::mem::take(&mut status.waiting_for_memory);
    let devices = status
        .devices
        .iter()
        .zip(state.models.device_budgets())
        .map(|(books, budget)| DeviceStatus {
            budget: budget.clone(),
            limit_bytes: books.limit_bytes,
            reserved_bytes: books.reserved_bytes,
        })
        .collect();
    let models = state
        .models
        .slots_with_residency(status)
        .into_iter()
        .map(|(slot, residency)| ModelStatus {
            prefix_cache: state
                .models
                .scheduler()
                .loaded(&residency.id)
                .and_then(|model| model.prefix_cache_status()),
            residency,
            queued: slot.queued(),
            max_concurrency: slot.spec.max_concurrency,
            context_length: slot.load_settings.context,
            estimate: slot.estimate,
        })
        .collect();
    json(
        StatusCode::OK,
        &Status {
            budget_bytes,
            reserved_bytes,
            devices,
            gpus_seen: state.models.gpus_seen().to_vec(),
            waiting_for_memory,
            pulling: state.models.pulling(),
            models,
        },
    )
}

/// `GET /admin/events?since=N`.
pub fn events(state: &ServerState, query: Option<&str>) -> Result<Response<Body>> {
    let since = match query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("since="))) {
        None => 0,
        Some(n) => n
            .parse()
            .map_err(|_| Error::invalid("since", "`since` must be an event number"))?,
    };
    let events = state.models.scheduler().events(since);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "events": events }),
    ))
}

/// `POST /admin/models/{id}/load`: answers once the model is loaded.
pub async fn load(state: &ServerState, id: &str) -> Result<Response<Body>> {
    state.models.get(id)?;
    state.models.scheduler().load(id).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"model": id, "state": "loaded"}),
    ))
}

/// `POST /admin/models/{id}/unload`: 200 once unloaded, 202 when it will be as soon as its
/// requests finish.
pub async fn unload(state: &ServerState, id: &str) -> Result<Response<Body>> {
    state.models.get(id)?;
    let (code, word) = match state.models.scheduler().unload(id).await? {
        UnloadOutcome::Unloaded => (StatusCode::OK, "unloaded"),
        UnloadOutcome::WhenIdle => (StatusCode::ACCEPTED, "unloading_when_idle"),
    };
    Ok(json(code, &serde_json::json!({"model": id, "state": word})))
}
