//! The disk budget: reserving bytes before writing them, and making room by evicting whole models
//! when the budget is short. Everything here runs under the store lock, so reservations made by
//! threads and processes side by side add up and the budget holds.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Locked, Store};
use crate::error::IoContext;
use crate::eviction::{take_until_freed, EvictionCandidate, EvictionRequest, LeastRecentlyUsed};
use crate::eviction::{EvictionPolicy, References};
use crate::fsutil::{now_ms, remove_file_if_present, sync_dir};
use crate::hash::BlobId;
use crate::name::ModelRef;
use crate::session::decrement;
use crate::telemetry::instruments;
use crate::{Error, Result};

/// Bytes set aside for writes in flight, and the blobs an operation relies on. Released (what is
/// left of it) when dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    store: &'a Store,
    bytes: u64,
    protected: Vec<BlobId>,
}

impl Store {
    /// Reserves room for `blobs` (those already in the store cost nothing and are protected from
    /// eviction until the reservation ends) plus `extra` bytes of blobs not yet known. With
    /// `evict`, models are evicted to make room; without, a short budget is [`Error::NoRoom`].
    /// `keep` is never evicted (the model being replaced by this import).
    pub fn reserve(
        &self,
        blobs: &[(BlobId, u64)],
        extra: u64,
        evict: bool,
        keep: Option<&ModelRef>,
    ) -> Result<(Reservation<'_>, BTreeSet<BlobId>)> {
        self.reserve_protecting(blobs, extra, evict, keep, false)
    }

    /// [`Self::reserve`] for a download of `blobs` into `keep`, evicting to make room. The missing
    /// blobs are protected too, which makes their partial downloads (see
    /// [`crate::layout::Layout::partial`]) part of this reservation instead of stale leftovers.
    pub fn reserve_download(
        &self,
        blobs: &[(BlobId, u64)],
        keep: &ModelRef,
    ) -> Result<(Reservation<'_>, BTreeSet<BlobId>)> {
        self.reserve_protecting(blobs, 0, true, Some(keep), true)
    }

    fn reserve_protecting(
        &self,
        blobs: &[(BlobId, u64)],
        extra: u64,
        evict: bool,
        keep: Option<&ModelRef>,
        protect_missing: bool,
    ) -> Result<(Reservation<'_>, BTreeSet<BlobId>)> {
        self.locked(|locked| {
            let distinct: std::collections::BTreeMap<BlobId, u64> = blobs.iter().copied().collect();
            let mut present = BTreeSet::new();
            let mut protected = Vec::new();
            let mut needed = extra;
            for (id, size) in distinct {
                if self.layout.blob(&id).is_file() {
                    present.insert(id);
                    protected.push(id);
                } else {
                    needed += size;
                    if protect_missing {
                        protected.push(id);
                    }
                }
            }
            // Protect first, so that making room cannot delete what this operation relies on.
            for id in &protected {
                *locked.own.protected.entry(*id).or_default() += 1;
            }
            if let Err(e) = locked.make_room(needed, evict, keep) {
                for id in &protected {
                    decrement(&mut locked.own.protected, id);
                }
                return Err(e);
            }
            locked.own.reserved += needed;
            Ok((
                Reservation {
                    store: self,
                    bytes: needed,
                    protected,
                },
                present,
            ))
        })
    }
}

impl Reservation<'_> {
    /// Bytes still reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Moves a fully written, fsynced temp file into the store as blob `id`. If the blob is
    /// already there (another writer won the race with the same content), the temp file is
    /// dropped and that counts as success. The blob is protected until the reservation ends.
    pub fn commit_blob(&mut self, tmp: &Path, id: BlobId, size: u64) -> Result<()> {
        let store = self.store;
        let reserved = &mut self.bytes;
        store.locked(|locked| {
            let target = store.layout.blob(&id);
            if target.is_file() {
                remove_file_if_present(tmp)?;
            } else {
                let fan = target.parent().expect("blobs have a fan-out directory");
                std::fs::create_dir_all(fan).io("cannot create", fan)?;
                std::fs::rename(tmp, &target).io("cannot move into place", &target)?;
                sync_dir(fan)?;
            }
            let released = size.min(*reserved);
            *reserved -= released;
            locked.own.reserved -= released;
            *locked.own.protected.entry(id).or_default() += 1;
            Ok(())
        })?;
        self.protected.push(id);
        Ok(())
    }

    /// Writes `manifest` under the store lock, before the reservation's protection ends, which
    /// makes the blobs it lists referenced. Every one of them must be in the store. The pin of a
    /// model it replaces is kept, and blobs only the replaced manifest listed are deleted.
    /// Returns the manifest as written.
    pub fn install(
        self,
        mut manifest: crate::manifest::Manifest,
    ) -> Result<crate::manifest::Manifest> {
        let store = self.store;
        let model = manifest.model.clone();
        if let Some(file) = manifest
            .files
            .iter()
            .find(|f| !store.layout.blob(&f.blake3).is_file())
        {
            return Err(Error::MissingBlob {
                model: model.to_string(),
                file: file.path.clone(),
                blake3: file.blake3.hex(),
            });
        }
        store.locked(|locked| {
            let previous = store.manifest(&model).ok();
            manifest.pinned |= previous.as_ref().is_some_and(|p| p.pinned);
            store.write_manifest(&manifest)?;
            crate::fsutil::remove_dir_if_present(&store.layout.materialized(&model))?;
            // A replacement with different bytes leaves the old ones unreferenced.
            if let Some(previous) = previous {
                let on_disk: std::collections::BTreeMap<BlobId, u64> = previous
                    .blobs()
                    .into_iter()
                    .filter(|(id, _)| store.layout.blob(id).is_file())
                    .collect();
                locked.delete_unreferenced(&on_disk)?;
            }
            Ok(())
        })?;
        drop(self);
        Ok(manifest)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let (bytes, protected) = (self.bytes, std::mem::take(&mut self.protected));
        let released = self.store.locked(|locked| {
            locked.own.reserved -= bytes.min(locked.own.reserved);
            for id in &protected {
                decrement(&mut locked.own.protected, id);
            }
            Ok(())
        });
        if let Err(e) = released {
            tracing::error!(error = %e, "could not release a reservation");
        }
    }
}

/// Every manifest, by model.
type Manifests = std::collections::BTreeMap<ModelRef, std::sync::Arc<crate::manifest::Manifest>>;

impl Locked<'_> {
    /// Who references which blob, with this process's and every live process's protections.
    pub(crate) fn references(&self) -> Result<References> {
        Ok(self.references_of(&self.store.manifests()?))
    }

    /// [`Self::references`] for manifests the caller has already read.
    pub(crate) fn references_of(&self, manifests: &Manifests) -> References {
        let mut refs = References {
            protected: self.all.protected_set(),
            ..Default::default()
        };
        refs.protected.extend(self.own.protected.keys().copied());
        for (model, manifest) in manifests {
            refs.models.insert(model.clone(), manifest.blobs());
        }
        refs
    }

    /// The facts an eviction policy sees about each model.
    pub(crate) fn candidates(
        &self,
        manifests: &Manifests,
        refs: &References,
    ) -> Vec<EvictionCandidate> {
        let mut leases = self.all.leases.clone();
        for (m, n) in &self.own.leases {
            *leases.entry(m.clone()).or_default() += n;
        }
        manifests
            .values()
            .map(|m| {
                let alone: BTreeSet<ModelRef> = [m.model.clone()].into_iter().collect();
                EvictionCandidate {
                    model: m.model.clone(),
                    size_bytes: m.size(),
                    unique_bytes: refs.freed_by(&alone),
                    last_used_ms: m.last_used_ms,
                    created_ms: m.created_ms,
                    pinned: m.pinned,
                    loaded: leases.contains_key(&m.model),
                }
            })
            .collect()
    }

    /// Makes `needed` bytes free under the budget: first unreferenced blobs, then whole models the
    /// policy picks. Either enough is freed or nothing is evicted and the error gives the numbers.
    pub(crate) fn make_room(
        &mut self,
        needed: u64,
        evict: bool,
        keep: Option<&ModelRef>,
    ) -> Result<()> {
        let Some(budget) = self.store.config.budget_bytes else {
            return Ok(());
        };
        let blobs = self.store.blobs_on_disk()?;
        let stale = self.stale_partials()?;
        let used = blobs.values().sum::<u64>() + stale.values().sum::<u64>() + self.all.reserved;
        if used + needed <= budget {
            return Ok(());
        }
        let shortfall = used + needed - budget;
        let manifests = self.store.manifests()?;
        let refs = self.references_of(&manifests);
        let referenced = refs.referenced();
        let garbage: Vec<(BlobId, u64)> = blobs
            .iter()
            .filter(|(id, _)| !referenced.contains(id))
            .map(|(id, s)| (*id, *s))
            .collect();
        let garbage_bytes: u64 =
            garbage.iter().map(|(_, s)| s).sum::<u64>() + stale.values().sum::<u64>();
        let mut candidates = self.candidates(&manifests, &refs);
        if let Some(keep) = keep {
            for c in candidates.iter_mut().filter(|c| &c.model == keep) {
                // The model being replaced is off limits, as if loaded.
                c.loaded = true;
            }
        }
        let evictable: Vec<ModelRef> = candidates
            .iter()
            .filter(|c| c.evictable())
            .map(|c| c.model.clone())
            .collect();
        let freeable = refs.freed_by(&evictable.iter().cloned().collect());
        let no_room = || Error::NoRoom {
            needed,
            available: budget.saturating_sub(used),
            freeable: garbage_bytes + if evict { freeable } else { 0 },
            budget,
        };
        let from_models = shortfall.saturating_sub(garbage_bytes);
        if from_models > 0 && (!evict || freeable < from_models) {
            return Err(no_room());
        }
        let victims = if from_models == 0 {
            BTreeSet::new()
        } else {
            self.choose_victims(&refs, candidates, from_models)
                .ok_or_else(no_room)?
        };
        for (id, _) in &garbage {
            remove_file_if_present(&self.store.layout.blob(id))?;
        }
        // Interrupted downloads nobody is resuming go before any model does.
        for id in stale.keys() {
            remove_file_if_present(&self.store.layout.partial(id))?;
        }
        let _span = (!victims.is_empty())
            .then(|| tracing::info_span!("store.evict", models = victims.len(), needed).entered());
        for victim in &victims {
            tracing::info!(model = %victim, "evicting to make room in the disk budget");
            self.store.delete_manifest(victim)?;
            instruments().evicted(1);
        }
        self.delete_unreferenced(&blobs)?;
        Ok(())
    }

    /// Asks the policy; an unusable answer is logged and the built-in policy decides instead.
    fn choose_victims(
        &self,
        refs: &References,
        candidates: Vec<EvictionCandidate>,
        needed: u64,
    ) -> Option<BTreeSet<ModelRef>> {
        let policy = &self.store.config.policy;
        let request = EvictionRequest {
            bytes_needed: needed,
            candidates,
        };
        let answer = match policy.try_choose(&request) {
            Ok(answer) => answer,
            Err(failure) => {
                instruments().eviction_decision(policy.name(), Some(failure.cause));
                tracing::warn!(policy = policy.name(), cause = failure.cause, detail = %failure.detail, "eviction policy failed; the built-in LRU policy decides");
                return take_until_freed(refs, &LeastRecentlyUsed.choose(&request), needed);
            }
        };
        let valid = answer.iter().all(|m| {
            request
                .candidates
                .iter()
                .any(|c| &c.model == m && c.evictable())
        });
        let cause = if valid {
            if let Some(victims) = take_until_freed(refs, &answer, needed) {
                instruments().eviction_decision(policy.name(), None);
                return Some(victims);
            }
            "too_few_bytes"
        } else {
            // Unknown, pinned or loaded models.
            "invalid_victim"
        };
        instruments().eviction_decision(policy.name(), Some(cause));
        tracing::warn!(
            policy = policy.name(),
            ?answer,
            needed,
            "eviction policy gave an unusable answer; the built-in LRU policy decides"
        );
        take_until_freed(refs, &LeastRecentlyUsed.choose(&request), needed)
    }

    /// Partial downloads that no live process protects: interrupted pulls, kept for a resume
    /// but counted against the budget and the first bytes freed when room is short. (A
    /// protected partial is inside its pull's reservation.)
    pub(crate) fn stale_partials(&self) -> Result<std::collections::BTreeMap<BlobId, u64>> {
        let mut protected = self.all.protected_set();
        protected.extend(self.own.protected.keys().copied());
        let mut partials = self.store.partials_on_disk()?;
        partials.retain(|id, _| !protected.contains(id));
        Ok(partials)
    }

    /// Deletes blobs (of `on_disk`) that no manifest lists and nothing protects. Returns bytes freed.
    pub(crate) fn delete_unreferenced(
        &self,
        on_disk: &std::collections::BTreeMap<BlobId, u64>,
    ) -> Result<u64> {
        let refs = self.references()?;
        let referenced = refs.referenced();
        let mut freed = 0;
        for (id, size) in on_disk {
            if !referenced.contains(id) {
                remove_file_if_present(&self.store.layout.blob(id))?;
                freed += size;
            }
        }
        Ok(freed)
    }

    /// Marks a model as used now.
    pub(crate) fn touch(&self, model: &ModelRef) -> Result<()> {
        let mut manifest = (*self.store.manifest(model)?).clone();
        manifest.last_used_ms = now_ms();
        self.store.write_manifest(&manifest)
    }
}

impl Reservation<'_> {
    /// Takes a blob that appeared in the store since the reservation was made (another import of
    /// this process wrote it): protects it and releases its bytes. False if it is not there.
    pub fn adopt_existing(&mut self, id: BlobId, size: u64) -> Result<bool> {
        let store = self.store;
        let reserved = &mut self.bytes;
        let adopted = store.locked(|locked| {
            if !store.layout.blob(&id).is_file() {
                return Ok(false);
            }
            let released = size.min(*reserved);
            *reserved -= released;
            locked.own.reserved -= released;
            *locked.own.protected.entry(id).or_default() += 1;
            Ok(true)
        })?;
        if adopted {
            self.protected.push(id);
        }
        Ok(adopted)
    }
}
