//! The registry's loader: mistral.rs loads each model onto the device the scheduler chose,
//! after its pre-load check, and the memory probe measures what each load took there
//! (resident memory on the CPU, device memory on a GPU); an unload waits until the engine has
//! given the memory back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{read, Preflight, Slots};
use crate::engine::{load_model, resolve_source, LoadedModel, PrefixCacheSettings};
use crate::residency::devices::{load_delta, DeviceMemory, MemoryProbe};
use crate::residency::{memory, Device, Loaded, ModelLoader};

/// Loads with mistral.rs, measuring what each load took on its device.
pub(super) struct MistralLoader {
    pub(super) slots: Slots,
    pub(super) preflight: Option<Preflight>,
    /// Where models run: on a CUDA build each goes whole onto the GPU it was placed on.
    pub(super) device: Device,
    /// Reads the devices; without one, loads are not measured and the estimate stands.
    pub(super) probe: Option<Arc<dyn MemoryProbe>>,
    /// Each loaded model's device and what its last load measured, to know when its unload
    /// has given the memory back.
    pub(super) loads: Arc<std::sync::Mutex<HashMap<String, LoadRecord>>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LoadRecord {
    device: usize,
    measured: Option<u64>,
}

/// Device `index` as `probe` reads it now.
fn reading(probe: &Option<Arc<dyn MemoryProbe>>, index: usize) -> Option<DeviceMemory> {
    probe.as_ref()?.read().ok()?.into_iter().nth(index)
}

/// What the device's own account (else its use) says this process holds there.
fn held(reading: &DeviceMemory) -> u64 {
    reading.used_by_us.unwrap_or_else(|| reading.in_use())
}

impl ModelLoader<LoadedModel> for MistralLoader {
    fn load(
        &self,
        id: &str,
        device: usize,
    ) -> BoxFuture<'static, std::result::Result<Loaded<LoadedModel>, String>> {
        let Some(slot) = read(&self.slots).get(id).cloned() else {
            let reason = format!("model `{id}` was removed");
            return async move { Err(reason) }.boxed();
        };
        let preflight = self.preflight.clone();
        let probe = self.probe.clone();
        let loads = self.loads.clone();
        let gpu = (self.device == Device::Cuda).then_some(device);
        async move {
            if let Some(check) = preflight {
                let spec = slot.spec.clone();
                // Under the load's span, so that what the check does (a pull) is traced there.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || span.in_scope(|| check(&spec)))
                    .await
                    .unwrap_or_else(|e| Err(format!("preflight panicked: {e}")))
                    .inspect_err(|reason| {
                        tracing::error!(model = %slot.spec.id, error = %reason, "model failed its preflight check")
                    })?;
            }
            // The last unload trimmed the heap already.
            memory::note_activity();
            let activity = memory::activity();
            let before = reading(&probe, device);
            let started = std::time::Instant::now();
            let source = if slot.fetched_on_load {
                resolve_source(&slot.spec).map_err(|e| e.to_string())?
            } else {
                slot.source.clone()
            };
            let prefix_cache = PrefixCacheSettings {
                bound: slot.estimate.prefix_cache,
                bytes_per_token: slot
                    .shape
                    .kv_bytes_per_token(slot.load_settings.device.kv_element_bytes()),
            };
            let model = load_model(&slot.spec, &source, prefix_cache, gpu).await.map_err(|e| {
                tracing::error!(model = %slot.spec.id, error = %e, "model failed to load");
                e.to_string()
            })?;
            memory::return_freed_memory();
            // Another load, an unload or a prefix cache keeping a finished sequence while this
            // load ran would be counted as this model's: such a measurement is not used, and
            // the estimate stands.
            let alone = memory::activity() == activity;
            memory::note_activity();
            let measured = match (alone, before, reading(&probe, device)) {
                (true, Some(before), Some(after)) => Some(load_delta(&before, &after)),
                _ => None,
            };
            if !alone {
                tracing::debug!(model = %slot.spec.id, "load not measured: other models took or gave back memory meanwhile");
            }
            lock(&loads).insert(slot.spec.id.clone(), LoadRecord { device, measured });
            tracing::info!(
                model = %slot.spec.id,
                kind = model.kind.as_str(),
                device,
                seconds = started.elapsed().as_secs_f64(),
                estimated_mib = slot.estimate.total >> 20,
                measured_mib = measured.map(|m| m >> 20),
                "model loaded"
            );
            Ok(Loaded {
                model: Arc::new(model),
                measured,
            })
        }
        .boxed()
    }

    fn unload(&self, id: &str, model: Arc<LoadedModel>) -> BoxFuture<'static, ()> {
        let id = id.to_string();
        let record = lock(&self.loads).remove(&id);
        let probe = self.probe.clone();
        async move {
            memory::note_activity();
            let device = record.map_or(0, |r| r.device);
            let held_now = || reading(&probe, device).as_ref().map(held);
            let before = held_now();
            // mistral.rs's drop talks to its engine thread; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(model)).await;
            let after = wait_for_release(held_now, before, record.and_then(|r| r.measured)).await;
            memory::note_activity();
            tracing::info!(
                model = %id,
                freed_mib = before.zip(after).map(|(b, a)| b.saturating_sub(a) >> 20),
                "model unloaded"
            );
        }
        .boxed()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// mistral.rs's engine thread frees a model shortly after the model is dropped, and the next
/// load must not start before that: its memory would overlap, and its measurement would be
/// too small. With a measurement, trim the heap until half of what the load took is back on
/// its device (`held` reads what this process holds there) and that has stopped falling, or
/// until it has not moved for 100 ms (at most two seconds); without one, give the engine a
/// fixed moment.
async fn wait_for_release(
    held: impl Fn() -> Option<u64>,
    before: Option<u64>,
    expected: Option<u64>,
) -> Option<u64> {
    let (Some(before), Some(expected)) = (before, expected) else {
        tokio::time::sleep(Duration::from_millis(250)).await;
        memory::return_freed_memory();
        return held();
    };
    let target = before.saturating_sub(expected / 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let (mut last, mut steady_polls) = (before, 0u32);
    loop {
        memory::return_freed_memory();
        let now = held().unwrap_or(0);
        steady_polls = if last.abs_diff(now) < 512 << 10 {
            steady_polls + 1
        } else {
            0
        };
        last = now;
        // Done when half is back and it stopped falling; a model whose memory does not show
        // (a tiny one, or pages glibc keeps) is given 100 ms of no change.
        let released = now <= target && steady_polls >= 1;
        if released || steady_polls >= 20 || std::time::Instant::now() >= deadline {
            return Some(now);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
