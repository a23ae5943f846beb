//! The store handle: opening it, the lock under which its books change, and the catalog of
//! manifests. The operations live beside this file, one idea each.

mod budget;
mod checkout;
mod import;
mod maintenance;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::IoContext;
use crate::eviction::{EvictionPolicy, LeastRecentlyUsed};
use crate::fsutil::{remove_file_if_present, sync_dir, write_atomic};
use crate::hash::BlobId;
use crate::layout::Layout;
use crate::manifest::{Manifest, SCHEMA};
use crate::name::ModelRef;
use crate::session::{Books, Session};
use crate::source::FileIdentity;
use crate::{Error, Result};

pub use budget::Reservation;
pub use checkout::Checkout;
pub use import::{
    FileOutcome, ImportMode, ImportOptions, ImportProgress, ImportReport, NoProgress,
};
pub use maintenance::{DiskUsage, GcReport, ModelSummary, Problem, VerifyReport};

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The most bytes the store may hold (`PORTEN_AUTO_DOWNLOAD_MB`); `None` for no limit.
    pub budget_bytes: Option<u64>,
    /// Chooses models to evict when room is needed.
    pub policy: Arc<dyn EvictionPolicy>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            budget_bytes: None,
            policy: Arc::new(LeastRecentlyUsed),
        }
    }
}

/// A handle on the store at one root. Cheap to share (`Arc<Store>`); safe to use from many threads
/// and from several processes at once.
#[derive(Debug)]
pub struct Store {
    layout: Layout,
    config: StoreConfig,
    /// flock-ed while the books change, against other processes.
    lock_file: File,
    /// This process's books; its mutex orders this process's threads.
    books: Mutex<Books>,
    session: Session,
    /// Hashes of source files already read, by identity; also makes two hashings of one file
    /// wait for each other instead of both reading it.
    hashes: moka::sync::Cache<FileIdentity, BlobId>,
    /// Parsed manifests, by path and the file's identity (so a rewrite by another process is seen).
    manifests: moka::sync::Cache<(PathBuf, FileIdentity), Arc<Manifest>>,
    /// Blobs hashed and found whole by this process, by id and identity.
    verified: moka::sync::Cache<(BlobId, FileIdentity), ()>,
    /// One writer per source file at a time inside this process.
    writing: Mutex<HashMap<FileIdentity, Arc<Mutex<()>>>>,
}

/// The books as seen under the lock: this process's (mutable) and everyone's.
pub(crate) struct Locked<'a> {
    pub own: MutexGuard<'a, Books>,
    pub all: Books,
    pub store: &'a Store,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes what dead processes left behind.
    pub fn open(root: impl Into<PathBuf>, config: StoreConfig) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).io("cannot create", &root)?;
        // Links into the blobs are absolute, so the root must be.
        let layout = Layout::new(root.canonicalize().io("cannot resolve", &root)?);
        for dir in layout.dirs() {
            std::fs::create_dir_all(&dir).io("cannot create", &dir)?;
        }
        let lock_path = layout.lock_file();
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .io("cannot open", &lock_path)?;
        lock_file.lock().io("cannot lock", &lock_path)?;
        let session = Session::create(&layout.sessions_dir());
        let cleaned = session
            .as_ref()
            .ok()
            .map(|s| s.others(&layout.sessions_dir()));
        lock_file.unlock().io("cannot unlock", &lock_path)?;
        let session = session?;
        if let Some(Ok((_, removed))) = cleaned {
            if removed > 0 {
                tracing::info!(removed, "cleaned up after processes that died mid-write");
            }
        }
        Ok(Self {
            layout,
            config,
            lock_file,
            books: Mutex::new(Books::default()),
            session,
            hashes: moka::sync::Cache::new(100_000),
            manifests: moka::sync::Cache::new(10_000),
            verified: moka::sync::Cache::new(100_000),
            writing: Mutex::new(HashMap::new()),
        })
    }

    /// Ends this process's session now (its leases and reservations with it), for a server that
    /// is exiting while other threads may still hold the store.
    pub fn end_session(&self) {
        let _books = self.books.lock().unwrap_or_else(|p| p.into_inner());
        self.session.end();
    }

    /// Where things are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The disk budget in bytes, if any.
    pub fn budget(&self) -> Option<u64> {
        self.config.budget_bytes
    }

    /// Runs `f` with the store locked against other threads and processes; this process's books
    /// are saved for the others afterwards.
    pub(crate) fn locked<T>(&self, f: impl FnOnce(&mut Locked<'_>) -> Result<T>) -> Result<T> {
        let own = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.layout.lock_file();
        self.lock_file.lock().io("cannot lock", &lock_path)?;
        let result = (|| {
            let (others, _) = self.session.others(&self.layout.sessions_dir())?;
            let mut all = own.clone();
            for b in &others {
                all.absorb(b);
            }
            let mut locked = Locked {
                own,
                all,
                store: self,
            };
            let before = locked.own.clone();
            let out = f(&mut locked)?;
            if *locked.own != before {
                self.session.save(&locked.own)?;
            }
            Ok(out)
        })();
        self.lock_file.unlock().io("cannot unlock", &lock_path)?;
        result
    }

    /// A temp path in this process's session directory.
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        self.session
            .tmp_dir()
            .join(format!("{what}-{}", uuid::Uuid::new_v4()))
    }

    /// Reads one model's manifest.
    pub fn manifest(&self, model: &ModelRef) -> Result<Arc<Manifest>> {
        let path = self.layout.manifest(model);
        match FileIdentity::of(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::ModelNotFound(model.to_string()))
            }
            Err(e) => Err(e).io("cannot read", &path),
            Ok(identity) => self.read_manifest(&path, identity),
        }
    }

    fn read_manifest(&self, path: &Path, identity: FileIdentity) -> Result<Arc<Manifest>> {
        let key = (path.to_path_buf(), identity);
        self.manifests
            .try_get_with(key, || {
                let bad = |reason: String| Error::BadManifest {
                    path: path.to_path_buf(),
                    reason,
                };
                let bytes = std::fs::read(path).io("cannot read", path)?;
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                if manifest.schema != SCHEMA {
                    return Err(bad(format!(
                        "schema {} (this porten reads {SCHEMA})",
                        manifest.schema
                    )));
                }
                Ok(Arc::new(manifest))
            })
            .map_err(|e: Arc<Error>| {
                Arc::try_unwrap(e).unwrap_or_else(|e| Error::BadManifest {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            })
    }

    /// Every manifest in the store, by model.
    pub fn manifests(&self) -> Result<BTreeMap<ModelRef, Arc<Manifest>>> {
        let mut out = BTreeMap::new();
        let root = self.layout.manifests_dir();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).io("cannot read", &dir)?.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    match self.read_manifest(&path, FileIdentity::from_metadata(&meta)) {
                        Ok(m) => {
                            out.insert(m.model.clone(), m);
                        }
                        Err(e) => tracing::warn!(error = %e, "skipping an unreadable manifest"),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes a manifest atomically.
    pub(crate) fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        write_atomic(
            &self.layout.manifest(&manifest.model),
            &bytes,
            self.session.tmp_dir(),
        )
    }

    /// Removes a manifest (durably) and its materialized directory.
    pub(crate) fn delete_manifest(&self, model: &ModelRef) -> Result<()> {
        let path = self.layout.manifest(model);
        remove_file_if_present(&path)?;
        let parent = path.parent().expect("manifests have parents");
        sync_dir(parent)?;
        crate::fsutil::prune_empty_parents(parent, &self.layout.manifests_dir());
        let materialized = self.layout.materialized(model);
        crate::fsutil::remove_dir_if_present(&materialized)?;
        Ok(())
    }

    /// Every blob on disk with its size.
    pub(crate) fn blobs_on_disk(&self) -> Result<BTreeMap<BlobId, u64>> {
        let mut out = BTreeMap::new();
        let root = self.layout.blobs_dir();
        for fan in std::fs::read_dir(&root).io("cannot read", &root)?.flatten() {
            let Ok(entries) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let id = entry.file_name().to_str().and_then(|n| n.parse().ok());
                if let (Some(id), Ok(meta)) = (id, entry.metadata()) {
                    out.insert(id, meta.len());
                }
            }
        }
        Ok(out)
    }

    /// Every partial download on disk with its length so far.
    pub(crate) fn partials_on_disk(&self) -> Result<BTreeMap<BlobId, u64>> {
        let dir = self.layout.partials_dir();
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).io("cannot read", &dir)?.flatten() {
            let id = entry.file_name().to_str().and_then(|n| n.parse().ok());
            if let (Some(id), Ok(meta)) = (id, entry.metadata()) {
                out.insert(id, meta.len());
            }
        }
        Ok(out)
    }

    /// Hashes a source file, once per identity (concurrent callers for the same file wait for the
    /// first instead of reading it again).
    pub(crate) fn hash_source(&self, path: &Path, identity: FileIdentity) -> Result<BlobId> {
        self.hashes
            .try_get_with(identity, || crate::hash::hash_file(path))
            .map_err(|e: Arc<Error>| {
                Arc::try_unwrap(e).unwrap_or_else(|e| Error::BadSource {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            })
    }

    /// A mutex per source file, so one thread of this process writes its blob at a time.
    pub(crate) fn writer_for(&self, identity: FileIdentity) -> Arc<Mutex<()>> {
        let mut map = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.entry(identity).or_default().clone()
    }
}
