//! The scheduler's decisions, taken under its lock: placing a model within the budget (unloading
//! idle ones for it), starting loads and unloads, correcting an underestimate, and the
//! keep-alive reaper.

use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use tracing::Instrument;

use super::super::devices::WATCH_INTERVAL;
use super::super::events::EventKind;
use super::super::policy::{checked_victims, PlacementRequest};
use super::books::{idle_candidates, Books, DeviceBooks, Entry, Phase};
use super::{Inner, Loaded};
use crate::telemetry::instruments;
use crate::{Error, Result};

impl<M: Send + Sync + 'static> Inner<M> {
    pub(super) fn lock(&self) -> MutexGuard<'_, Books<M>> {
        // A panic under the lock leaves the books as they were between two statements; serving
        // on is better than poisoning every later request.
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn record(&self, books: &mut Books<M>, model: &str, kind: EventKind) {
        let device = books.models.get(model).map_or(0, |e| e.device);
        self.record_on(books, device, model, kind);
    }

    pub(super) fn record_on(
        &self,
        books: &mut Books<M>,
        device: usize,
        model: &str,
        kind: EventKind,
    ) {
        let reserved = books.devices[device].reserved;
        books
            .events
            .push(self.now_ms(), model, device, kind, reserved);
    }

    /// Starts loading `id` on a device where it fits, else queues it for memory and, when it
    /// is the oldest waiting, unloads idle models for it on one device.
    pub(super) fn place(self: &Arc<Self>, books: &mut Books<M>, id: &str) -> Result<()> {
        let need = books.models[id].charge();
        // Devices that could ever hold it (within their limit now), most free first: a model
        // goes where it leaves the most room, which spreads models over the devices.
        let mut devices: Vec<usize> = (0..books.devices.len())
            .filter(|&d| books.devices[d].limit.is_none_or(|l| need <= l))
            .collect();
        devices.sort_by_key(|&d| std::cmp::Reverse(books.devices[d].free()));
        let Some(&roomiest) = devices.first() else {
            books.room_queue.retain(|m| m != id);
            self.record(books, id, EventKind::Refused { need });
            let largest = |of: fn(&DeviceBooks) -> Option<u64>| {
                books.devices.iter().filter_map(of).max().unwrap_or(0)
            };
            let budget = largest(|d| d.budget);
            // Within a budget, the limit is only lower while other processes hold memory.
            return Err(if need <= budget {
                Error::MemoryTaken {
                    model: id.to_string(),
                    need,
                    available: largest(|d| d.limit),
                    retry_after_secs: 2 * WATCH_INTERVAL.as_secs(),
                }
            } else {
                Error::WillNotFit {
                    model: id.to_string(),
                    need,
                    budget,
                }
            });
        };
        if need <= books.devices[roomiest].free() {
            books.room_queue.retain(|m| m != id);
            self.start_load(books, id, roomiest);
            return Ok(());
        }
        if !books.room_queue.iter().any(|m| m == id) {
            books.room_queue.push_back(id.to_string());
        }
        if books.room_queue.front().map(String::as_str) != Some(id) {
            return Ok(());
        }
        let leaving = |books: &Books<M>, device: usize| -> u64 {
            books
                .models
                .values()
                .filter(|e| e.device == device && matches!(e.phase, Phase::Unloading))
                .map(Entry::charge)
                .sum()
        };
        if devices
            .iter()
            .any(|&d| need <= books.devices[d].free().saturating_add(leaving(books, d)))
        {
            return Ok(());
        }
        for device in devices {
            let request = PlacementRequest {
                model: id.to_string(),
                need,
                budget: books.devices[device].limit.unwrap_or(u64::MAX),
                free: books.devices[device]
                    .free()
                    .saturating_add(leaving(books, device)),
                candidates: idle_candidates(books, device, id),
            };
            // Evict only when the victims together make room; otherwise wait for busy models.
            if let Some(victims) = checked_victims(self.policy.as_ref(), &request) {
                for victim in victims {
                    self.start_unload(books, &victim, "evicted");
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sets what loads may reserve on `device` now: its budget, or `available` bytes when
    /// that is less (other processes took memory porten counted on). Idle models are
    /// unloaded until its reservations fit again; busy ones finish first.
    pub(super) fn limit_device(self: &Arc<Self>, device: usize, available: Option<u64>) {
        let mut books = self.lock();
        let Some(entry) = books.devices.get(device).copied() else {
            return;
        };
        let limit = match (entry.budget, available) {
            (Some(budget), Some(available)) => Some(budget.min(available)),
            (budget, None) => budget,
            (None, available) => available,
        };
        if limit == entry.limit {
            return;
        }
        books.devices[device].limit = limit;
        self.record_on(
            &mut books,
            device,
            "",
            EventKind::LimitChanged {
                from: entry.limit,
                to: limit,
            },
        );
        let cause = format!("device {device}");
        self.restore_budget(&mut books, device, &cause, "budget_shrunk");
        drop(books);
        self.bump();
    }

    pub(super) fn start_load(self: &Arc<Self>, books: &mut Books<M>, id: &str, device: usize) {
        let entry = books.models.get_mut(id).expect("a known model");
        let charge = entry.charge();
        entry.phase = Phase::Loading;
        entry.device = device;
        books.devices[device].reserved += charge;
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
        let span = tracing::info_span!(
            "model.load",
            model = %id,
            device,
            reserved_bytes = charge as i64
        );
        let load = async move {
            let loaded = {
                let _one = inner.one_at_a_time.lock().await;
                let started = Instant::now();
                let loaded = inner.loader.load(&id, device).await;
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

    pub(super) fn finish_load(
        self: &Arc<Self>,
        id: &str,
        loaded: std::result::Result<Loaded<M>, String>,
    ) {
        let mut books = self.lock();
        let entry = books.models.get_mut(id).expect("a known model");
        let (before, device) = (entry.charge(), entry.device);
        match loaded {
            Ok(Loaded { model, measured }) => {
                entry.measured = match (entry.measured, measured) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                entry.phase = Phase::Loaded(model);
                entry.loads += 1;
                entry.last_used = Instant::now();
                entry.loaded_at = Some(entry.last_used);
                entry.expires = entry.keep_alive.duration().map(|d| Instant::now() + d);
                let (estimate, after) = (entry.estimate, entry.charge());
                books.devices[device].reserved = books.devices[device].reserved - before + after;
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
                    self.restore_budget(&mut books, device, id, "over_budget");
                }
            }
            Err(reason) => {
                entry.phase = Phase::Failed(reason.clone());
                books.devices[device].reserved -= before;
                self.record(&mut books, id, EventKind::LoadFailed { reason });
            }
        }
    }

    /// After a measurement above its estimate, or a lower limit, pushed `device`'s
    /// reservations over its limit, unloads idle models there until they fit again.
    pub(super) fn restore_budget(
        self: &Arc<Self>,
        books: &mut Books<M>,
        device: usize,
        cause: &str,
        reason: &'static str,
    ) {
        let DeviceBooks {
            limit: Some(limit),
            reserved,
            ..
        } = books.devices[device]
        else {
            return;
        };
        if reserved <= limit {
            return;
        }
        let request = PlacementRequest {
            model: cause.to_string(),
            need: reserved - limit,
            budget: limit,
            free: 0,
            candidates: idle_candidates(books, device, cause),
        };
        let victims = checked_victims(self.policy.as_ref(), &request)
            .unwrap_or_else(|| request.candidates.iter().map(|c| c.model.clone()).collect());
        for victim in victims {
            self.start_unload(books, &victim, reason);
        }
    }

    pub(super) fn start_unload(
        self: &Arc<Self>,
        books: &mut Books<M>,
        id: &str,
        reason: &'static str,
    ) {
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
            let (charge, device) = (entry.charge(), entry.device);
            entry.phase = Phase::Available;
            books.devices[device].reserved -= charge;
            inner.record(&mut books, &id, EventKind::Unloaded { reason });
            drop(books);
            inner.bump();
        };
        tokio::spawn(unload.instrument(span));
    }

    /// Unloads idle models whose keep-alive ran out or whose unload was asked for; returns when
    /// the next one is due.
    pub(super) fn reap(self: &Arc<Self>) -> Option<Instant> {
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

pub(super) async fn reap_idle_models<M: Send + Sync + 'static>(inner: Weak<Inner<M>>) {
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
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep_until(sleep) => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
