//! The registry's loader: mistral.rs loads each model after its pre-load check, and on the
//! CPU each load's resident memory is measured; an unload waits until the engine has given the
//! memory back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{read, Preflight, Slots};
use crate::engine::{load_model, resolve_source, LoadedModel, PrefixCacheSettings};
use crate::residency::{memory, Loaded, ModelLoader};

/// Loads with mistral.rs, measuring what each load took in resident memory on the CPU.
pub(super) struct MistralLoader {
    pub(super) slots: Slots,
    pub(super) preflight: Option<Preflight>,
    pub(super) measure: bool,
    /// What each model's last load measured, to know when its unload has given it back.
    pub(super) measured: Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

impl ModelLoader<LoadedModel> for MistralLoader {
    fn load(
        &self,
        id: &str,
    ) -> BoxFuture<'static, std::result::Result<Loaded<LoadedModel>, String>> {
        let Some(slot) = read(&self.slots).get(id).cloned() else {
            let reason = format!("model `{id}` was removed");
            return async move { Err(reason) }.boxed();
        };
        let preflight = self.preflight.clone();
        let measure = self.measure;
        let measurements = self.measured.clone();
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
            let before = memory::resident_bytes();
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
            let model = load_model(&slot.spec, &source, prefix_cache).await.map_err(|e| {
                tracing::error!(model = %slot.spec.id, error = %e, "model failed to load");
                e.to_string()
            })?;
            memory::return_freed_memory();
            // Another load, an unload or a prefix cache keeping a finished sequence while this
            // load ran would be counted as this model's: such a measurement is not used, and
            // the estimate stands.
            let alone = memory::activity() == activity;
            memory::note_activity();
            let measured = match (measure && alone, before, memory::resident_bytes()) {
                (true, Some(before), Some(after)) => Some(after.saturating_sub(before)),
                _ => None,
            };
            if measure && !alone {
                tracing::debug!(model = %slot.spec.id, "load not measured: other models took or gave back memory meanwhile");
            }
            if let Some(bytes) = measured {
                lock(&measurements).insert(slot.spec.id.clone(), bytes);
            }
            tracing::info!(
                model = %slot.spec.id,
                kind = model.kind.as_str(),
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
        let expected = lock(&self.measured).get(&id).copied();
        async move {
            memory::note_activity();
            let before = memory::resident_bytes();
            // mistral.rs's drop talks to its engine thread; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || drop(model)).await;
            let after = wait_for_release(before, expected).await;
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
/// too small. With a measurement, trim the heap until half of what the load took is back and
/// resident memory has stopped falling, or until it has not moved for 100 ms (at most two
/// seconds); without one (GPUs), give the engine a fixed moment.
async fn wait_for_release(before: Option<u64>, expected: Option<u64>) -> Option<u64> {
    let (Some(before), Some(expected)) = (before, expected) else {
        tokio::time::sleep(Duration::from_millis(250)).await;
        memory::return_freed_memory();
        return memory::resident_bytes();
    };
    let target = before.saturating_sub(expected / 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let (mut last, mut steady_polls) = (before, 0u32);
    loop {
        memory::return_freed_memory();
        let now = memory::resident_bytes().unwrap_or(0);
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
