//! The scheduler's decisions, taken under its lock: placing a model within the budget (unloading
//! idle ones for it), starting loads and unloads, correcting an underestimate, and the
//! keep-alive reaper.

use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use tracing::Instrument;

use super::super::events::EventKind;
use super::super::policy::{checked_victims, PlacementRequest};
use super::books::{idle_candidates, Books, Entry, Phase};
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
        let reserved = books.reserved;
        books.events.push(self.now_ms(), model, kind, reserved);
    }

    /// Starts loading `id` if it fits, else queues it for memory and, when it is the oldest
    /// waiting, unloads idle models for it.
    pub(super) fn place(self: &Arc<Self>, books: &mut Books<M>, id: &str) -> Result<()> {
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

    pub(super) fn start_load(self: &Arc<Self>, books: &mut Books<M>, id: &str) {
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

    pub(super) fn finish_load(
        self: &Arc<Self>,
        id: &str,
        loaded: std::result::Result<Loaded<M>, String>,
    ) {
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
    pub(super) fn restore_budget(self: &Arc<Self>, books: &mut Books<M>, loaded: &str) {
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
