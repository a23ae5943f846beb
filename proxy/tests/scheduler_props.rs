//! The residency scheduler under random concurrent request sequences, on one device or two,
//! while other processes take memory on a device for a while, with a fake loader that keeps
//! its own account of what is loaded where. Invariants: no device's budget is ever exceeded
//! (by the loader's account and by the scheduler's event log), no load starts above a
//! device's limit at the time, every request is answered (no deadlock, no lost request), a
//! model larger than any device is refused at once, and once everything is idle with a zero
//! keep-alive, everything is unloaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use porten_proxy::residency::{
    EventKind, KeepAlive, LeastRecentlyUsed, Loaded, ModelLoader, ModelPlan, Scheduler,
    SchedulerSettings,
};
use porten_proxy::Error;
use proptest::prelude::*;

const BUDGET: u64 = 100;

/// Sizes of the models; the last is larger than the budget, "broken" fails to load.
const SIZES: [u64; 6] = [20, 35, 50, 60, 150, 30];
const TOO_BIG: usize = 4;
const BROKEN: usize = 5;

fn name(i: usize) -> String {
    match i {
        BROKEN => "broken".into(),
        i => format!("m{i}"),
    }
}

struct FakeModel;

/// Loads by sleeping; keeps its own count of loaded bytes on each device and the most ever
/// loaded there at once.
struct FakeLoader {
    live: [AtomicU64; 2],
    peak: [AtomicU64; 2],
    placed: Mutex<HashMap<String, usize>>,
    load_ms: u64,
    log: Mutex<Vec<String>>,
}

impl FakeLoader {
    fn size_of(id: &str) -> u64 {
        (0..SIZES.len())
            .find(|i| name(*i) == id)
            .map(|i| SIZES[i])
            .unwrap()
    }
}

impl ModelLoader<FakeModel> for Arc<FakeLoader> {
    fn load(
        &self,
        id: &str,
        device: usize,
    ) -> BoxFuture<'static, Result<Loaded<FakeModel>, String>> {
        let me = self.clone();
        let id = id.to_string();
        async move {
            let bytes = FakeLoader::size_of(&id);
            let live = me.live[device].fetch_add(bytes, Ordering::SeqCst) + bytes;
            me.peak[device].fetch_max(live, Ordering::SeqCst);
            me.placed.lock().unwrap().insert(id.clone(), device);
            me.log
                .lock()
                .unwrap()
                .push(format!("load {id} on {device} -> {live}"));
            tokio::time::sleep(Duration::from_millis(me.load_ms)).await;
            if id == "broken" {
                me.live[device].fetch_sub(bytes, Ordering::SeqCst);
                return Err("the weights are broken".into());
            }
            Ok(Loaded {
                model: Arc::new(FakeModel),
                measured: Some(bytes - bytes / 4),
            })
        }
        .boxed()
    }

    fn unload(&self, id: &str, _model: Arc<FakeModel>) -> BoxFuture<'static, ()> {
        let me = self.clone();
        let id = id.to_string();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let device = me.placed.lock().unwrap()[&id];
            let live = me.live[device].fetch_sub(FakeLoader::size_of(&id), Ordering::SeqCst);
            me.log
                .lock()
                .unwrap()
                .push(format!("unload {id} <- {live}"));
        }
        .boxed()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A request for model `model`, starting after `delay_ms`, holding it `hold_ms`, with an
    /// optional per-request keep-alive in milliseconds.
    Request {
        model: usize,
        delay_ms: u64,
        hold_ms: u64,
        keep_alive_ms: Option<u64>,
    },
    /// An operator unload.
    Unload { model: usize, delay_ms: u64 },
    /// Another process takes memory on `device` for `for_ms`: its limit drops to `limit`
    /// (never below the largest model that fits, so every request can still be served).
    Squeeze {
        device: usize,
        limit: u64,
        delay_ms: u64,
        for_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SIZES.len(), 0..20u64, 0..8u64, proptest::option::of(0..15u64)).prop_map(
            |(model, delay_ms, hold_ms, keep_alive_ms)| Op::Request { model, delay_ms, hold_ms, keep_alive_ms }
        ),
        1 => (0..SIZES.len(), 0..20u64).prop_map(|(model, delay_ms)| Op::Unload { model, delay_ms }),
        1 => (0..2usize, 60..BUDGET, 0..20u64, 0..20u64).prop_map(
            |(device, limit, delay_ms, for_ms)| Op::Squeeze { device, limit, delay_ms, for_ms }
        ),
    ]
}

fn run_case(
    ops: Vec<Op>,
    devices: usize,
    load_ms: u64,
    default_keep_alive_ms: u64,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let loader = Arc::new(FakeLoader {
            live: Default::default(),
            peak: Default::default(),
            placed: Mutex::default(),
            load_ms,
            log: Mutex::new(Vec::new()),
        });
        let plans = (0..SIZES.len())
            .map(|i| ModelPlan {
                id: name(i),
                estimate: SIZES[i],
                keep_alive: None,
            })
            .collect();
        let scheduler: Scheduler<FakeModel> = Scheduler::new(
            SchedulerSettings {
                budgets: vec![Some(BUDGET); devices],
                keep_alive: KeepAlive::For(Duration::from_millis(default_keep_alive_ms)),
            },
            plans,
            Arc::new(loader.clone()),
            Arc::new(LeastRecentlyUsed),
        );
        let mut tasks = Vec::new();
        for op in ops.clone() {
            let scheduler = scheduler.clone();
            tasks.push(tokio::spawn(async move {
                match op {
                    Op::Request {
                        model,
                        delay_ms,
                        hold_ms,
                        keep_alive_ms,
                    } => {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let keep_alive =
                            keep_alive_ms.map(|ms| KeepAlive::For(Duration::from_millis(ms)));
                        let lease = scheduler.acquire(&name(model), keep_alive).await;
                        let outcome = match &lease {
                            Ok(_) => "ok",
                            Err(Error::WillNotFit { .. }) => "too big",
                            Err(Error::ModelUnavailable { .. }) => "unavailable",
                            Err(_) => "other error",
                        };
                        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                        drop(lease);
                        (model, outcome)
                    }
                    Op::Unload { model, delay_ms } => {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let outcome = match scheduler.unload(&name(model)).await {
                            Ok(_) => "unload",
                            Err(_) => "other error",
                        };
                        (model, outcome)
                    }
                    Op::Squeeze {
                        device,
                        limit,
                        delay_ms,
                        for_ms,
                    } => {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        scheduler.limit_device(device, Some(limit));
                        tokio::time::sleep(Duration::from_millis(for_ms)).await;
                        scheduler.limit_device(device, None);
                        (0, "squeeze")
                    }
                }
            }));
        }
        // No deadlock: every request is answered well within this bound.
        let answered =
            tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(tasks))
                .await
                .map_err(|_| {
                    TestCaseError::fail(format!(
                        "requests still waiting after 20 s: {:?}\n{:#?}",
                        scheduler.status(),
                        loader.log.lock().unwrap()
                    ))
                })?;
        for (op, result) in ops.iter().zip(answered) {
            let (model, outcome) = result.unwrap();
            let expected = match (op, model) {
                (Op::Unload { .. }, _) => "unload",
                (Op::Squeeze { .. }, _) => "squeeze",
                (_, TOO_BIG) => "too big",
                (_, BROKEN) => "unavailable",
                _ => "ok",
            };
            prop_assert_eq!(outcome, expected, "{:?}", op);
        }
        for peak in &loader.peak {
            let peak = peak.load(Ordering::SeqCst);
            prop_assert!(
                peak <= BUDGET,
                "the loader saw {} bytes loaded at once on one device; {:#?}",
                peak,
                loader.log.lock().unwrap()
            );
        }
        let mut limits = [BUDGET; 2];
        for event in scheduler.events(0) {
            prop_assert!(event.device < devices, "{:?}", event);
            prop_assert!(event.reserved_bytes <= BUDGET, "{:?}", event);
            match event.kind {
                EventKind::LimitChanged { to, .. } => limits[event.device] = to.unwrap(),
                EventKind::LoadStarted { .. } => prop_assert!(
                    event.reserved_bytes <= limits[event.device],
                    "a load started above the device's limit {}: {:?}",
                    limits[event.device],
                    event
                ),
                _ => {}
            }
            if event.model == name(TOO_BIG) {
                prop_assert!(
                    matches!(event.kind, EventKind::Refused { .. }),
                    "{:?}",
                    event
                );
            }
        }
        // Idle with short keep-alives: everything goes, and the books balance.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let status = scheduler.status();
            if status.reserved_bytes == 0 && status.models.iter().all(|m| m.state != "loaded") {
                break;
            }
            prop_assert!(
                tokio::time::Instant::now() < deadline,
                "not unloaded: {:?}",
                status
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for live in &loader.live {
            prop_assert_eq!(live.load(Ordering::SeqCst), 0);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_request_sequences_keep_the_budget_and_answer_everyone(
        ops in proptest::collection::vec(op(), 1..40),
        devices in 1..=2usize,
        load_ms in 0..4u64,
        default_keep_alive_ms in 0..30u64,
    ) {
        run_case(ops, devices, load_ms, default_keep_alive_ms)?;
    }
}

/// Two models that cannot be loaded together, asked for alternately by overlapping requests:
/// both keep being served (neither starves), one at a time.
#[test]
fn two_models_that_do_not_fit_together_take_turns() {
    let ops: Vec<Op> = (0..30)
        .map(|i| Op::Request {
            model: [2, 3][i % 2],
            delay_ms: i as u64,
            hold_ms: 3,
            keep_alive_ms: None,
        })
        .collect();
    run_case(ops, 1, 1, 50).unwrap();
}
