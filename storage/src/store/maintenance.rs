//! Looking after the store: list, remove, pin, collect garbage, verify, report usage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Store;
use crate::error::IoContext;
use crate::fsutil::now_ms;
use crate::hash::{hash_file, BlobId};
use crate::manifest::Manifest;
use crate::name::ModelRef;
use crate::source::FileIdentity;
use crate::{Error, Result};

/// One row of `porten ls`.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    /// The manifest.
    pub manifest: Arc<Manifest>,
    /// Loaded by a running porten right now.
    pub loaded: bool,
}

/// What `porten gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs no manifest listed.
    pub blobs_removed: usize,
    /// Their bytes, with those of interrupted downloads removed.
    pub bytes_freed: u64,
    /// Materialized directories of models that are gone.
    pub stale_links_removed: usize,
}

/// Something `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The blob's bytes hash to something else; it was moved to quarantine.
    Corrupt {
        /// The blob.
        blob: BlobId,
        /// Models listing it (empty for an unreferenced blob).
        models: Vec<String>,
    },
    /// A manifest lists a blob that is not there.
    Missing {
        /// The blob.
        blob: BlobId,
        /// Models listing it.
        models: Vec<String>,
    },
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Blobs rehashed.
    pub blobs_checked: usize,
    /// Their bytes.
    pub bytes_checked: u64,
    /// What was wrong.
    pub problems: Vec<Problem>,
}

/// What `porten du` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskUsage {
    /// The budget, if any.
    pub budget: Option<u64>,
    /// Bytes of blobs on disk, and of interrupted downloads (a download in progress counts in
    /// `reserved` instead).
    pub used: u64,
    /// Bytes reserved by writes in flight.
    pub reserved: u64,
    /// Bytes of blobs nothing refers to and of interrupted downloads (`gc` frees them).
    pub garbage: u64,
    /// Bytes eviction could free (unpinned, unloaded models), garbage included.
    pub reclaimable: u64,
    /// Models in the store.
    pub models: usize,
}

impl Store {
    /// Every model, with whether a running porten has it loaded.
    pub fn list(&self) -> Result<Vec<ModelSummary>> {
        let leases = self.locked(|locked| {
            let mut leases = locked.all.leases.clone();
            leases.extend(locked.own.leases.clone());
            Ok(leases)
        })?;
        Ok(self
            .manifests()?
            .into_values()
            .map(|manifest| ModelSummary {
                loaded: leases.contains_key(&manifest.model),
                manifest,
            })
            .collect())
    }

    /// Removes a model; its blobs go too unless another model lists them. A loaded model is
    /// refused; a pinned one needs `force`.
    pub fn remove(&self, model: &ModelRef, force: bool) -> Result<u64> {
        self.locked(|locked| {
            let manifest = self.manifest(model)?;
            if manifest.pinned && !force {
                return Err(Error::ModelBusy {
                    model: model.to_string(),
                    why: "pinned (unpin it first)",
                });
            }
            if locked.all.leases.contains_key(model) || locked.own.leases.contains_key(model) {
                return Err(Error::ModelBusy {
                    model: model.to_string(),
                    why: "loaded by a running porten",
                });
            }
            let on_disk = self.blobs_on_disk()?;
            self.delete_manifest(model)?;
            let mine: BTreeMap<BlobId, u64> = manifest
                .blobs()
                .into_iter()
                .filter(|(id, _)| on_disk.contains_key(id))
                .collect();
            locked.delete_unreferenced(&mine)
        })
    }

    /// Names `from`'s files a second time, as `to` (Ollama's `copy`): no bytes are copied, the
    /// two share their blobs. An existing `to` is refused; the copy starts unpinned.
    pub fn copy(&self, from: &ModelRef, to: &ModelRef) -> Result<Arc<Manifest>> {
        self.locked(|_| {
            let source = self.manifest(from)?;
            if self.manifest(to).is_ok() {
                return Err(Error::ModelBusy {
                    model: to.to_string(),
                    why: "already in the store (remove it first)",
                });
            }
            let now = now_ms();
            let copy = Manifest {
                model: to.clone(),
                source: Some(format!("copy of {from}")),
                created_ms: now,
                last_used_ms: now,
                pinned: false,
                ..(*source).clone()
            };
            self.write_manifest(&copy)?;
            Ok(Arc::new(copy))
        })
    }

    /// Pins or unpins a model (a pinned model is never evicted).
    pub fn set_pinned(&self, model: &ModelRef, pinned: bool) -> Result<()> {
        self.locked(|_| {
            let mut manifest = (*self.manifest(model)?).clone();
            manifest.pinned = pinned;
            self.write_manifest(&manifest)
        })
    }

    /// Removes unreferenced blobs and stale materialized directories. Temp files of dead
    /// processes go whenever the store is opened or locked.
    pub fn gc(&self) -> Result<GcReport> {
        self.locked(|locked| {
            let on_disk = self.blobs_on_disk()?;
            let before = on_disk.len();
            let mut bytes_freed = locked.delete_unreferenced(&on_disk)?;
            for (id, size) in locked.stale_partials()? {
                crate::fsutil::remove_file_if_present(&self.layout.partial(&id))?;
                bytes_freed += size;
            }
            let blobs_removed = before - self.blobs_on_disk()?.len();
            let models: BTreeSet<ModelRef> = self.manifests()?.into_keys().collect();
            let mut stale_links_removed = 0;
            let root = self.layout.root().join("models-v1");
            for dir in materialized_dirs(&root) {
                let rel = dir.strip_prefix(&root).expect("under root");
                let text = rel.to_string_lossy();
                let Some((name, tag)) = text.rsplit_once('/') else {
                    continue;
                };
                let model = ModelRef {
                    name: name.into(),
                    tag: tag.into(),
                };
                if !models.contains(&model) {
                    crate::fsutil::remove_dir_if_present(&dir)?;
                    crate::fsutil::prune_empty_parents(dir.parent().expect("nested"), &root);
                    stale_links_removed += 1;
                }
            }
            Ok(GcReport {
                blobs_removed,
                bytes_freed,
                stale_links_removed,
            })
        })
    }

    /// Rehashes the blobs of `model` (or every blob on disk). A corrupt blob is moved to
    /// quarantine, so nothing ever serves it; a missing one is reported.
    pub fn verify(&self, model: Option<&ModelRef>) -> Result<VerifyReport> {
        let manifests = self.manifests()?;
        let mut listed: BTreeMap<BlobId, Vec<String>> = BTreeMap::new();
        for (m, manifest) in &manifests {
            for id in manifest.blobs().keys() {
                listed.entry(*id).or_default().push(m.to_string());
            }
        }
        let targets: BTreeSet<BlobId> = match model {
            Some(m) => self.manifest(m)?.blobs().into_keys().collect(),
            None => listed
                .keys()
                .copied()
                .chain(self.blobs_on_disk()?.into_keys())
                .collect(),
        };
        let mut report = VerifyReport::default();
        for id in targets {
            let models = listed.get(&id).cloned().unwrap_or_default();
            match self.check_blob(&id)? {
                BlobState::Whole(size) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += size;
                }
                BlobState::Missing => report.problems.push(Problem::Missing { blob: id, models }),
                BlobState::Corrupt(size) => {
                    report.blobs_checked += 1;
                    report.bytes_checked += size;
                    report.problems.push(Problem::Corrupt { blob: id, models });
                }
            }
        }
        Ok(report)
    }

    /// Hashes one blob (skipped if this process already found it whole and it has not changed
    /// since); a corrupt one is quarantined.
    pub(crate) fn check_blob(&self, id: &BlobId) -> Result<BlobState> {
        let path = self.layout.blob(id);
        let identity = match FileIdentity::of(&path) {
            Ok(i) => i,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BlobState::Missing),
            Err(e) => return Err(e).io("cannot read", &path),
        };
        let size = std::fs::metadata(&path).io("cannot read", &path)?.len();
        if self.verified.contains_key(&(*id, identity)) {
            return Ok(BlobState::Whole(size));
        }
        if hash_file(&path)? == *id {
            self.verified.insert((*id, identity), ());
            return Ok(BlobState::Whole(size));
        }
        self.locked(|_| {
            let dest = self
                .layout
                .quarantine_dir()
                .join(format!("{}.{}", id.hex(), now_ms()));
            tracing::error!(blob = %id, quarantine = %dest.display(), "corrupt blob quarantined");
            match std::fs::rename(&path, &dest) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).io("cannot quarantine", &path)
                }
                _ => Ok(()),
            }
        })?;
        Ok(BlobState::Corrupt(size))
    }

    /// Budget, usage and what could be reclaimed.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        self.locked(|locked| {
            let on_disk = self.blobs_on_disk()?;
            let manifests = self.manifests()?;
            let refs = locked.references_of(&manifests);
            let referenced = refs.referenced();
            let stale: u64 = locked.stale_partials()?.values().sum();
            let garbage: u64 = stale
                + on_disk
                    .iter()
                    .filter(|(id, _)| !referenced.contains(id))
                    .map(|(_, s)| s)
                    .sum::<u64>();
            let evictable: BTreeSet<ModelRef> = locked
                .candidates(&manifests, &refs)
                .into_iter()
                .filter(|c| c.evictable())
                .map(|c| c.model)
                .collect();
            Ok(DiskUsage {
                budget: self.budget(),
                used: on_disk.values().sum::<u64>() + stale,
                reserved: locked.all.reserved,
                garbage,
                reclaimable: garbage + refs.freed_by(&evictable),
                models: refs.models.len(),
            })
        })
    }
}

/// A blob's condition.
pub(crate) enum BlobState {
    Whole(u64),
    Corrupt(u64),
    Missing,
}

/// `models-v1/<name...>/<tag>` directories, recognised by the `.porten-model` marker that
/// checkout writes into each.
fn materialized_dirs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.join(".porten-model").is_file() {
            out.push(dir);
            continue;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    out
}
