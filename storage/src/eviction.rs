//! Which models leave the disk when room is needed. The store asks an [`EvictionPolicy`], checks
//! its answer, and falls back to [`LeastRecentlyUsed`] when the answer is unusable.

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::BlobId;
use crate::name::ModelRef;

/// One model the policy may choose, with the facts it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionCandidate {
    /// The model.
    pub model: ModelRef,
    /// Bytes of its distinct blobs.
    pub size_bytes: u64,
    /// Bytes that evicting this model alone would free (blobs no other model shares).
    pub unique_bytes: u64,
    /// Last import, load or request (ms since the epoch).
    pub last_used_ms: u64,
    /// When it was imported (ms since the epoch).
    pub created_ms: u64,
    /// Pinned by the user: must not be chosen.
    pub pinned: bool,
    /// Loaded by a running porten: must not be chosen.
    pub loaded: bool,
}

impl EvictionCandidate {
    /// Whether the store will accept this model as a victim.
    pub fn evictable(&self) -> bool {
        !self.pinned && !self.loaded
    }
}

/// A request for room.
#[derive(Debug, Clone)]
pub struct EvictionRequest {
    /// Bytes that must be freed.
    pub bytes_needed: u64,
    /// Every model in the store (pinned and loaded ones too, flagged, so a policy sees the whole
    /// picture).
    pub candidates: Vec<EvictionCandidate>,
}

/// Decides which models to evict. Implementations may be foreign (WebAssembly plugins): the store
/// validates every answer before acting on it.
pub trait EvictionPolicy: Send + Sync + std::fmt::Debug {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// The models to evict, in order. The store refuses answers that name unknown, pinned or
    /// loaded models, or that do not free `bytes_needed`.
    fn choose(&self, request: &EvictionRequest) -> Vec<ModelRef>;

    /// [`Self::choose`] for policies that can fail to answer (plugins); the store calls this
    /// one, and a failure means the built-in policy decides.
    fn try_choose(&self, request: &EvictionRequest) -> Result<Vec<ModelRef>, PolicyFailure> {
        Ok(self.choose(request))
    }
}

/// Why a policy gave no answer at all (a plugin trapped, ran out of time or memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    /// A short cause for metrics: `timeout`, `memory`, `trap`, ...
    pub cause: &'static str,
    /// Details for the log.
    pub detail: String,
}

/// The built-in policy: the least recently used evictable models, oldest first, until enough is
/// freed.
#[derive(Debug, Default, Clone, Copy)]
pub struct LeastRecentlyUsed;

impl EvictionPolicy for LeastRecentlyUsed {
    fn name(&self) -> &str {
        "lru"
    }

    fn choose(&self, request: &EvictionRequest) -> Vec<ModelRef> {
        let mut order: Vec<&EvictionCandidate> = request
            .candidates
            .iter()
            .filter(|c| c.evictable())
            .collect();
        order.sort_by_key(|c| (c.last_used_ms, c.created_ms));
        // Unique bytes undercount what a set frees (blobs shared only inside the set), so the
        // store's own accounting decides when to stop; this only fixes the order.
        order.into_iter().map(|c| c.model.clone()).collect()
    }
}

/// Who references which blobs: the arithmetic behind "how much would evicting these free".
#[derive(Debug, Default)]
pub(crate) struct References {
    /// Models and the blobs (with sizes) each one lists.
    pub models: BTreeMap<ModelRef, BTreeMap<BlobId, u64>>,
    /// Blobs that in-progress imports rely on: never freed.
    pub protected: BTreeSet<BlobId>,
}

impl References {
    /// Every blob some model lists or some import relies on: the ones that must stay.
    pub fn referenced(&self) -> BTreeSet<BlobId> {
        self.models
            .values()
            .flat_map(|blobs| blobs.keys().copied())
            .chain(self.protected.iter().copied())
            .collect()
    }

    /// Bytes freed by removing every model in `victims`: blobs that no remaining model lists and
    /// no import relies on.
    pub fn freed_by(&self, victims: &BTreeSet<ModelRef>) -> u64 {
        let kept: BTreeSet<BlobId> = self
            .models
            .iter()
            .filter(|(m, _)| !victims.contains(*m))
            .flat_map(|(_, blobs)| blobs.keys().copied())
            .chain(self.protected.iter().copied())
            .collect();
        let mut freed = BTreeMap::new();
        for victim in victims {
            if let Some(blobs) = self.models.get(victim) {
                for (id, size) in blobs {
                    if !kept.contains(id) {
                        freed.insert(*id, *size);
                    }
                }
            }
        }
        freed.values().sum()
    }
}

/// Takes models from `order` until they free `needed`; `None` when even all of them do not.
pub(crate) fn take_until_freed(
    refs: &References,
    order: &[ModelRef],
    needed: u64,
) -> Option<BTreeSet<ModelRef>> {
    let mut chosen = BTreeSet::new();
    for model in order {
        chosen.insert(model.clone());
        if refs.freed_by(&chosen) >= needed {
            return Some(chosen);
        }
    }
    (needed == 0).then_some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    fn model(name: &str) -> ModelRef {
        ModelRef::parse(name).unwrap()
    }

    fn candidate(name: &str, last_used_ms: u64, pinned: bool, loaded: bool) -> EvictionCandidate {
        EvictionCandidate {
            model: model(name),
            size_bytes: 10,
            unique_bytes: 10,
            last_used_ms,
            created_ms: 0,
            pinned,
            loaded,
        }
    }

    #[test]
    fn lru_orders_by_last_use_and_skips_pinned_and_loaded() {
        let request = EvictionRequest {
            bytes_needed: 1,
            candidates: vec![
                candidate("new", 30, false, false),
                candidate("pinned", 1, true, false),
                candidate("old", 10, false, false),
                candidate("loaded", 2, false, true),
            ],
        };
        assert_eq!(
            LeastRecentlyUsed.choose(&request),
            vec![model("old"), model("new")]
        );
    }

    #[test]
    fn a_shared_blob_is_freed_only_when_every_model_listing_it_goes() {
        let mut refs = References::default();
        refs.models
            .insert(model("a"), [(id(1), 100), (id(9), 5)].into_iter().collect());
        refs.models
            .insert(model("b"), [(id(2), 200), (id(9), 5)].into_iter().collect());
        let a: BTreeSet<_> = [model("a")].into_iter().collect();
        assert_eq!(refs.freed_by(&a), 100);
        let both: BTreeSet<_> = [model("a"), model("b")].into_iter().collect();
        assert_eq!(refs.freed_by(&both), 305);
        refs.protected.insert(id(2));
        assert_eq!(refs.freed_by(&both), 105, "an import relies on blob 2");
        assert_eq!(
            take_until_freed(&refs, &[model("a"), model("b")], 101),
            Some(both)
        );
        assert_eq!(
            take_until_freed(&refs, &[model("a"), model("b")], 106),
            None
        );
    }
}
