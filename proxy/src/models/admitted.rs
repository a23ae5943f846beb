//! A request's hold on its model: the engine slot, the lease that keeps the model loaded, and
//! its turn (shared with the other requests, or alone for a moment when the engine's prefix
//! cache must be dropped, or for the whole answer when it reads raw logits).

use std::sync::Arc;

use crate::admission::Slot;
use crate::engine::LoadedModel;
use crate::residency;
use crate::Result;

/// A request's place with a loaded model: the engine slot and the hold that keeps the model in
/// memory. Dropped when the answer is complete (for a stream: after its last event).
pub struct Admitted {
    // The lease goes before the slot: the model is released before the next request enters.
    pub(super) lease: residency::Lease<LoadedModel>,
    /// Taken and put back when the request must hold the model alone for a moment.
    pub(super) turn: tokio::sync::Mutex<Option<Turn>>,
    pub(super) turns: Arc<tokio::sync::RwLock<()>>,
    pub(super) _slot: Slot,
    /// Tokens a sequence may hold, prompt and answer: the context its memory estimate sized.
    pub context_length: u64,
}

/// A request's share of its model: with the others, or alone.
pub(super) enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl Admitted {
    /// Drops the engine's prefix cache when its books are full, first waiting until no other
    /// request uses the model (and holding new ones back): the way the cache is dropped fails
    /// every prompt the engine schedules beside it. The request then shares the model again.
    pub async fn make_room_in_prefix_cache(&self) -> Result<()> {
        if !self.lease.prefix_cache_is_full() {
            return Ok(());
        }
        let mut turn = self.turn.lock().await;
        match turn.take() {
            Some(Turn::Alone(alone)) => {
                *turn = Some(Turn::Alone(alone));
                return self.lease.drop_prefix_cache(true).await;
            }
            Some(Turn::Shared(shared)) => drop(shared),
            None => {}
        }
        let alone = self.turns.clone().write_owned().await;
        // Another request may have dropped it while this one waited.
        let dropped = self.lease.drop_prefix_cache(true).await;
        *turn = Some(Turn::Shared(alone.downgrade()));
        dropped
    }
}

impl std::ops::Deref for Admitted {
    type Target = LoadedModel;
    fn deref(&self) -> &LoadedModel {
        &self.lease
    }
}
