//! Each process using the store has a session directory holding a locked file and its books:
//! bytes reserved for writes in flight, blobs its imports rely on, models it has loaded. Other
//! processes read live sessions' books when they account for the budget; a session whose lock can
//! be taken belongs to a process that died, and is removed with its temp files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoContext;
use crate::fsutil::remove_dir_if_present;
use crate::hash::BlobId;
use crate::name::ModelRef;
use crate::Result;

/// What one process has outstanding.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Books {
    /// Bytes reserved for blobs being written.
    pub reserved: u64,
    /// Blobs imports in progress rely on (written or deduplicated, manifest not yet written),
    /// with how many imports rely on each.
    pub protected: BTreeMap<BlobId, u32>,
    /// Models loaded by this process, with how many holders.
    pub leases: BTreeMap<ModelRef, u32>,
}

/// This process's session.
#[derive(Debug)]
pub(crate) struct Session {
    dir: PathBuf,
    /// Held (locked) for the process's lifetime; the lock dies with the process.
    _lock: File,
}

impl Session {
    /// Creates a session under `sessions_dir`. Call with the store lock held, so that no other
    /// process sees the directory before its lock is taken.
    pub fn create(sessions_dir: &Path) -> Result<Self> {
        let dir = sessions_dir.join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir).io("cannot create", &dir)?;
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).io("cannot create", &lock_path)?;
        lock.lock().io("cannot lock", &lock_path)?;
        let session = Self { dir, _lock: lock };
        session.save(&Books::default())?;
        Ok(session)
    }

    /// The directory for this process's temp files (same filesystem as the blobs).
    pub fn tmp_dir(&self) -> &Path {
        &self.dir
    }

    /// Writes this process's books for other processes to read.
    /// No fsync: after a crash the session is dead and its books are void anyway; the rename
    /// only keeps readers from seeing a half-written file.
    pub fn save(&self, books: &Books) -> Result<()> {
        let bytes = serde_json::to_vec(books).expect("books serialize");
        let tmp = self.dir.join("books.json.new");
        std::fs::write(&tmp, bytes).io("cannot write", &tmp)?;
        let path = self.dir.join("books.json");
        std::fs::rename(&tmp, &path).io("cannot write", &path)
    }

    /// Reads the books of every other live session, removing dead ones (and their temp files).
    /// Returns the live books and how many dead sessions were removed. Call with the store lock held.
    pub fn others(&self, sessions_dir: &Path) -> Result<(Vec<Books>, usize)> {
        let mut live = Vec::new();
        let mut removed = 0;
        let entries = std::fs::read_dir(sessions_dir).io("cannot read", sessions_dir)?;
        for entry in entries.flatten() {
            let dir = entry.path();
            if dir == self.dir {
                continue;
            }
            if !dir.is_dir() {
                crate::fsutil::remove_file_if_present(&dir)?;
                continue;
            }
            if is_alive(&dir) {
                let books = std::fs::read(dir.join("books.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                live.push(books);
            } else {
                tracing::info!(session = %dir.display(), "removing the files of a process that died");
                remove_dir_if_present(&dir)?;
                removed += 1;
            }
        }
        Ok((live, removed))
    }
}

impl Session {
    /// Removes this session's directory: its books, leases and temp files end here.
    pub fn end(&self) {
        let _ = remove_dir_if_present(&self.dir);
    }
}

impl Drop for Session {
    /// A clean exit removes its own session; only a crash leaves one for the next start to remove.
    fn drop(&mut self) {
        self.end();
    }
}

/// A session is alive while its process holds the lock on its `lock` file.
fn is_alive(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join("lock")) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => true,
    }
}

impl Books {
    /// Adds `other`'s outstanding items to these.
    pub fn absorb(&mut self, other: &Books) {
        self.reserved += other.reserved;
        for (id, n) in &other.protected {
            *self.protected.entry(*id).or_default() += n;
        }
        for (m, n) in &other.leases {
            *self.leases.entry(m.clone()).or_default() += n;
        }
    }

    /// Blobs protected by anyone.
    pub fn protected_set(&self) -> BTreeSet<BlobId> {
        self.protected.keys().copied().collect()
    }
}

/// Decrements a count in a map, removing the key at zero.
pub(crate) fn decrement<K: Ord>(map: &mut BTreeMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}
