//! Re-reading the devices while the server runs: when another process takes memory porten
//! counted on, the device's limit drops below its budget (and the log says so) rather than a
//! load running into an out-of-memory error; when the memory comes back, so does the limit.

use std::sync::Arc;
use std::time::Duration;

use super::{DeviceMemory, MemoryProbe};
use crate::residency::Scheduler;

/// How often the devices are read again.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Bytes porten can count on having on a device: what is free plus what porten itself holds
/// there: its own account where the device keeps one, else what it has reserved, up to what
/// is in use. Memory reserved but not yet touched (a KV cache that grows) is in `free`.
pub fn available_to_porten(now: &DeviceMemory, reserved: u64) -> u64 {
    let ours = now.used_by_us.unwrap_or_else(|| reserved.min(now.in_use()));
    now.free.saturating_add(ours)
}

/// A limit only moves when it changes by more than this, so that the noise of resident
/// memory does not rewrite it at every look: 64 MiB, or 1% of the budget when that is more.
fn hysteresis(budget: u64) -> u64 {
    (64u64 << 20).max(budget / 100)
}

/// Keeps each device's limit in step with what it can still give.
pub struct DeviceWatch<M> {
    scheduler: Scheduler<M>,
    probe: Arc<dyn MemoryProbe>,
}

impl<M: Send + Sync + 'static> DeviceWatch<M> {
    /// A watch over the devices `probe` reads, for `scheduler`'s books.
    pub fn new(scheduler: Scheduler<M>, probe: Arc<dyn MemoryProbe>) -> Self {
        Self { scheduler, probe }
    }

    /// Reads the devices once and moves the limits that changed.
    pub fn look(&self) {
        let devices = match self.probe.read() {
            Ok(devices) => devices,
            Err(e) => {
                tracing::warn!(probe = %self.probe.source(), error = %e, "cannot read device memory; limits stay as they are");
                return;
            }
        };
        let status = self.scheduler.status();
        for (books, now) in status.devices.iter().zip(&devices) {
            let Some(budget) = books.budget_bytes else {
                continue;
            };
            let available = available_to_porten(now, books.reserved_bytes);
            let index = books.index;
            let wanted = (available < budget).then_some(available);
            // The limit given last, `None` while the device has its whole budget: the watch
            // only ever lowers a limit below the budget.
            let applied = books.limit_bytes.filter(|l| *l < budget);
            let moved = match (applied, wanted) {
                (None, None) => false,
                (Some(a), Some(w)) => a.abs_diff(w) > hysteresis(budget),
                _ => true,
            };
            if !moved {
                continue;
            }
            match wanted {
                Some(limit) => tracing::warn!(
                    device = index,
                    name = %now.name,
                    budget_mib = budget >> 20,
                    limit_mib = limit >> 20,
                    free_mib = now.free >> 20,
                    reserved_mib = books.reserved_bytes >> 20,
                    "other processes hold memory porten counted on: the device's limit drops \
                     below its budget, idle models there are unloaded to fit, and loads wait"
                ),
                None => tracing::info!(
                    device = index,
                    name = %now.name,
                    budget_mib = budget >> 20,
                    "the memory other processes held is back: the device has its whole budget again"
                ),
            }
            self.scheduler.limit_device(index, wanted);
        }
    }
}

/// Runs a [`DeviceWatch`] every [`WATCH_INTERVAL`] until the scheduler closes.
pub async fn watch_devices<M: Send + Sync + 'static>(
    scheduler: Scheduler<M>,
    probe: Arc<dyn MemoryProbe>,
) {
    let watch = DeviceWatch::new(scheduler, probe);
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        if watch.scheduler.is_closed() {
            return;
        }
        watch.look();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::residency::scheduler::Immediate;
    use crate::residency::{EventKind, KeepAlive, LeastRecentlyUsed, ModelPlan, SchedulerSettings};
    use std::sync::Mutex;

    const MIB: u64 = 1 << 20;

    /// Devices whose memory the test sets as it goes.
    struct Scripted(Mutex<Vec<DeviceMemory>>);

    impl MemoryProbe for Scripted {
        fn source(&self) -> String {
            "scripted".into()
        }
        fn read(&self) -> Result<Vec<DeviceMemory>, String> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    fn device(total_mib: u64, free_mib: u64) -> DeviceMemory {
        DeviceMemory {
            name: "GPU".into(),
            total: total_mib * MIB,
            free: free_mib * MIB,
            used_by_us: None,
        }
    }

    fn plan(id: &str, mib: u64) -> ModelPlan {
        ModelPlan {
            id: id.into(),
            estimate: mib * MIB,
            keep_alive: None,
        }
    }

    fn device_of(scheduler: &Scheduler<()>, id: &str) -> (usize, &'static str) {
        let status = scheduler.status();
        let m = status.models.iter().find(|m| m.id == id).unwrap();
        (m.device, m.state)
    }

    async fn settle(scheduler: &Scheduler<()>) {
        for _ in 0..100 {
            let status = scheduler.status();
            if status
                .models
                .iter()
                .all(|m| m.state != "loading" && m.state != "unloading")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the scheduler did not settle");
    }

    /// Two 1000 MiB devices with 900 MiB budgets: models spread over them; another process
    /// takes 600 MiB of device 1, so its idle model goes and a model that no longer fits there
    /// loads on device 0 once room is made; when the memory comes back, so does the budget.
    #[tokio::test]
    async fn other_processes_taking_memory_shrink_the_devices_limit() {
        let probe = Arc::new(Scripted(Mutex::new(vec![
            device(1000, 1000),
            device(1000, 1000),
        ])));
        let scheduler = Scheduler::new(
            SchedulerSettings {
                budgets: vec![Some(900 * MIB), Some(900 * MIB)],
                keep_alive: KeepAlive::Forever,
            },
            vec![plan("a", 500), plan("b", 500), plan("c", 600)],
            Arc::new(Immediate),
            Arc::new(LeastRecentlyUsed),
        );
        let watch = DeviceWatch::new(scheduler.clone(), probe.clone());
        scheduler.load("a").await.unwrap();
        scheduler.load("b").await.unwrap();
        assert_eq!(device_of(&scheduler, "a"), (0, "loaded"));
        assert_eq!(
            device_of(&scheduler, "b"),
            (1, "loaded"),
            "the roomiest device"
        );
        // Porten's own use shows as in use: nothing changes.
        *probe.0.lock().unwrap() = vec![device(1000, 500), device(1000, 500)];
        watch.look();
        assert_eq!(scheduler.status().devices[1].limit_bytes, Some(900 * MIB));

        // Another process takes the 500 MiB left on device 1: porten can count on the 500 it
        // holds, and b still fits.
        *probe.0.lock().unwrap() = vec![device(1000, 500), device(1000, 0)];
        watch.look();
        let status = scheduler.status();
        assert_eq!(status.devices[1].limit_bytes, Some(500 * MIB));
        settle(&scheduler).await;
        assert_eq!(device_of(&scheduler, "b"), (1, "loaded"));
        // The device's own account says porten holds only 300 MiB there: b no longer fits.
        probe.0.lock().unwrap()[1].used_by_us = Some(300 * MIB);
        watch.look();
        settle(&scheduler).await;
        assert_eq!(scheduler.status().devices[1].limit_bytes, Some(300 * MIB));
        assert_eq!(
            device_of(&scheduler, "b"),
            (1, "available"),
            "evicted to fit"
        );
        let events = scheduler.events(0);
        assert!(events.iter().any(|e| e.device == 1
            && matches!(
                e.kind,
                EventKind::UnloadStarted {
                    reason: "budget_shrunk"
                }
            )));
        assert!(events.iter().any(|e| e.device == 1
            && matches!(e.kind, EventKind::LimitChanged { to: Some(l), .. } if l == 300 * MIB)));
        assert_loads_kept_the_limits(&scheduler);

        // c (600) fits neither device 1's 300 nor device 0's 400 free: a goes for it.
        scheduler.load("c").await.unwrap();
        assert_eq!(device_of(&scheduler, "c"), (0, "loaded"));
        assert_eq!(device_of(&scheduler, "a").1, "available");

        // The other process leaves: device 1 has its budget back.
        *probe.0.lock().unwrap() = vec![device(1000, 400), device(1000, 1000)];
        watch.look();
        assert_eq!(scheduler.status().devices[1].limit_bytes, Some(900 * MIB));
        scheduler.load("b").await.unwrap();
        scheduler.load("a").await.unwrap();
        assert_eq!(device_of(&scheduler, "a"), (1, "loaded"));
        assert_loads_kept_the_limits(&scheduler);
    }

    /// No load started on a device above the limit in effect there at the time.
    fn assert_loads_kept_the_limits(scheduler: &Scheduler<()>) {
        let mut limits = [900 * MIB; 2];
        for e in scheduler.events(0) {
            match e.kind {
                EventKind::LimitChanged { to, .. } => limits[e.device] = to.unwrap(),
                EventKind::LoadStarted { .. } | EventKind::Loaded { .. } => {
                    assert!(e.reserved_bytes <= limits[e.device], "{e:?}")
                }
                _ => {}
            }
        }
    }

    /// A model within the budget that no device can take while others hold memory is told to
    /// retry (503), not that it can never load (507).
    #[tokio::test]
    async fn a_model_no_squeezed_device_can_take_now_is_told_to_retry() {
        let probe = Arc::new(Scripted(Mutex::new(vec![device(1000, 100)])));
        let scheduler = Scheduler::new(
            SchedulerSettings::one_device(Some(900 * MIB), KeepAlive::Forever),
            vec![plan("a", 500), plan("huge", 950)],
            Arc::new(Immediate),
            Arc::new(LeastRecentlyUsed),
        );
        DeviceWatch::new(scheduler.clone(), probe).look();
        match scheduler.acquire("a", None).await {
            Err(crate::Error::MemoryTaken {
                need, available, ..
            }) => assert_eq!((need, available), (500 * MIB, 100 * MIB)),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(matches!(
            scheduler.acquire("huge", None).await,
            Err(crate::Error::WillNotFit { budget, .. }) if budget == 900 * MIB
        ));
    }

    #[test]
    fn what_porten_may_count_on_is_free_plus_its_own() {
        let mut now = device(1000, 300);
        assert_eq!(available_to_porten(&now, 500 * MIB), 800 * MIB);
        assert_eq!(
            available_to_porten(&now, 900 * MIB),
            1000 * MIB,
            "reserved up to in use"
        );
        now.used_by_us = Some(100 * MIB);
        assert_eq!(available_to_porten(&now, 900 * MIB), 400 * MIB);
    }
}
