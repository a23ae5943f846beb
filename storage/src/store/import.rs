//! `porten import`: hash a model's files, reserve room for the new ones, link or copy them into
//! the blob store, then write the manifest. Until the manifest is written nothing refers to the
//! new blobs, and a crash leaves only temp files that the next start removes.

use std::fs::File;
use std::path::Path;

use super::Store;
use crate::error::IoContext;
use crate::fsutil::{now_ms, read_only, remove_file_if_present};
use crate::hash::{hash_file, BlobId};
use crate::manifest::{FileEntry, Manifest, SCHEMA};
use crate::name::ModelRef;
use crate::source::{self, FileIdentity, SourceFile};
use crate::{Error, Result};

/// Files smaller than this are hashed before a copy even when the copy would hash them anyway:
/// it costs little and lets the reservation skip files the store already holds.
const SMALL_FILE: u64 = 16 << 20;

/// How bytes get into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// No copy where the filesystem allows: a reflink (copy-on-write clone), else a hard link,
    /// else a copy.
    #[default]
    Link,
    /// Always copy (`--copy`), so the store owns its bytes outright.
    Copy,
}

/// What to import as.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The name and tag to store the model under.
    pub model: ModelRef,
    /// Link or copy.
    pub mode: ImportMode,
    /// What the manifest names as the model's source instead of the imported path: for a file
    /// porten made from another (a requantized copy in a scratch directory), that other.
    pub made_from: Option<String>,
}

/// How one file got into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome {
    /// The store already held these bytes.
    AlreadyStored,
    /// Cloned copy-on-write: shares blocks with the source until either is written.
    Reflinked,
    /// Hard-linked: the store and the source are the same file.
    HardLinked,
    /// Copied byte for byte.
    Copied,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The manifest written.
    pub manifest: Manifest,
    /// Each file and how it was stored.
    pub files: Vec<(String, FileOutcome)>,
}

/// Receives progress; the CLI draws bars with it. Every method has a silent default.
pub trait ImportProgress: Send + Sync {
    /// A phase (`hashing`, `linking`, `copying`) over `total_bytes` begins.
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// The current phase is over.
    fn phase_done(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl ImportProgress for NoProgress {}

impl Store {
    /// Imports the GGUF file, model directory or Hugging Face snapshot at `path`.
    pub fn import(
        &self,
        path: &Path,
        options: &ImportOptions,
        progress: &dyn ImportProgress,
    ) -> Result<ImportReport> {
        let source = source::scan(path)?;
        let pairs: Vec<(String, &Path)> = source
            .files
            .iter()
            .map(|f| (f.rel.clone(), f.abs.as_path()))
            .collect();
        let metadata = crate::metadata::read(&pairs).map_err(|reason| Error::BadSource {
            path: path.to_path_buf(),
            reason,
        })?;
        let files = &source.files;
        let hash_first = |f: &SourceFile| options.mode == ImportMode::Link || f.size < SMALL_FILE;
        let mut ids: Vec<Option<BlobId>> =
            files.iter().map(|f| self.hashes.get(&f.identity)).collect();
        self.hash_missing(files, &mut ids, hash_first, progress)?;

        let model = &options.model;
        let known: Vec<(BlobId, u64)> = files
            .iter()
            .zip(&ids)
            .filter_map(|(f, id)| id.map(|id| (id, f.size)))
            .collect();
        let unknown: u64 = files
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.is_none())
            .map(|(f, _)| f.size)
            .sum();
        // Try without evicting; if room is short, learn every hash first so that nothing is
        // evicted for bytes the store turns out to hold already.
        let (mut reservation, present) = match self.reserve(&known, unknown, false, Some(model)) {
            Ok(r) => r,
            Err(Error::NoRoom { .. }) => {
                self.hash_missing(files, &mut ids, |_| true, progress)?;
                let all: Vec<(BlobId, u64)> = files
                    .iter()
                    .zip(&ids)
                    .map(|(f, id)| (id.expect("hashed"), f.size))
                    .collect();
                self.reserve(&all, 0, true, Some(model))?
            }
            Err(e) => return Err(e),
        };

        let to_write: u64 = files
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !id.is_some_and(|id| present.contains(&id)))
            .map(|(f, _)| f.size)
            .sum();
        progress.phase(
            if options.mode == ImportMode::Copy {
                "copying"
            } else {
                "linking"
            },
            to_write,
        );
        let mut entries = Vec::with_capacity(files.len());
        let mut outcomes = Vec::with_capacity(files.len());
        for (file, id) in files.iter().zip(&ids) {
            let (id, outcome) = match id {
                Some(id) if present.contains(id) => (*id, FileOutcome::AlreadyStored),
                _ => {
                    let stored =
                        self.store_file(file, *id, options.mode, &mut reservation, progress)?;
                    if stored.1 != FileOutcome::Copied {
                        progress.advance(file.size);
                    }
                    stored
                }
            };
            entries.push(FileEntry {
                path: file.rel.clone(),
                size: file.size,
                blake3: id,
                sha256: file.sha256.clone(),
            });
            outcomes.push((file.rel.clone(), outcome));
        }
        progress.phase_done();

        let now = now_ms();
        let manifest = Manifest {
            schema: SCHEMA,
            model: model.clone(),
            files: entries,
            metadata,
            source: Some(
                options
                    .made_from
                    .clone()
                    .unwrap_or_else(|| path.display().to_string()),
            ),
            created_ms: now,
            last_used_ms: now,
            pinned: false,
        };
        let manifest = reservation.install(manifest)?;
        tracing::info!(model = %model, files = outcomes.len(), "imported");
        Ok(ImportReport {
            manifest,
            files: outcomes,
        })
    }

    fn hash_missing(
        &self,
        files: &[SourceFile],
        ids: &mut [Option<BlobId>],
        wanted: impl Fn(&SourceFile) -> bool,
        progress: &dyn ImportProgress,
    ) -> Result<()> {
        let todo: u64 = files
            .iter()
            .zip(ids.iter())
            .filter(|(f, id)| id.is_none() && wanted(f))
            .map(|(f, _)| f.size)
            .sum();
        if todo == 0 {
            return Ok(());
        }
        progress.phase("hashing", todo);
        for (file, id) in files.iter().zip(ids.iter_mut()) {
            if id.is_none() && wanted(file) {
                *id = Some(self.hash_source(&file.abs, file.identity)?);
                progress.advance(file.size);
            }
        }
        progress.phase_done();
        Ok(())
    }

    /// Puts one file's bytes into the store; returns the blob id of what was stored.
    fn store_file(
        &self,
        file: &SourceFile,
        hashed: Option<BlobId>,
        mode: ImportMode,
        reservation: &mut super::Reservation<'_>,
        progress: &dyn ImportProgress,
    ) -> Result<(BlobId, FileOutcome)> {
        // One writer per source file in this process: a second import of the same file waits,
        // then finds the blob stored.
        let writer = self.writer_for(file.identity);
        let _guard = writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = hashed.or_else(|| self.hashes.get(&file.identity)) {
            if reservation.adopt_existing(id, file.size)? {
                return Ok((id, FileOutcome::AlreadyStored));
            }
        }
        let tmp = self.tmp_path("blob");
        let linked = match (mode, hashed) {
            (ImportMode::Link, Some(id)) => self.link(file, id, &tmp)?,
            _ => None,
        };
        let (id, outcome) = match linked {
            Some(done) => done,
            None => {
                // The kernel copies (copy_file_range, as cp does) while another core hashes the
                // same source through the page cache; the source's identity before and after
                // proves both saw the same bytes.
                let (copied, hashed) =
                    rayon::join(|| std::fs::copy(&file.abs, &tmp), || hash_file(&file.abs));
                let copied = copied.io("cannot copy", &file.abs);
                let unchanged = FileIdentity::of(&file.abs).ok() == Some(file.identity);
                let (id, copied) = match (hashed, copied) {
                    (Ok(id), Ok(n)) if unchanged && n == file.size => (id, n),
                    (hashed, copied) => {
                        remove_file_if_present(&tmp)?;
                        hashed?;
                        copied?;
                        return Err(Error::BadSource {
                            path: file.abs.clone(),
                            reason: "the file changed while being imported".into(),
                        });
                    }
                };
                File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .io("cannot sync", &tmp)?;
                read_only(&tmp);
                self.hashes.insert(file.identity, id);
                progress.advance(copied);
                (id, FileOutcome::Copied)
            }
        };
        if let Err(e) = reservation.commit_blob(&tmp, id, file.size) {
            let _ = remove_file_if_present(&tmp);
            return Err(e);
        }
        Ok((id, outcome))
    }

    /// Reflinks or hard-links `file` to `tmp`. `None` when neither works here (another
    /// filesystem, no permission): the caller copies instead.
    fn link(
        &self,
        file: &SourceFile,
        id: BlobId,
        tmp: &Path,
    ) -> Result<Option<(BlobId, FileOutcome)>> {
        let outcome = if reflink_copy::reflink(&file.abs, tmp).is_ok() {
            FileOutcome::Reflinked
        } else if std::fs::hard_link(&file.abs, tmp).is_ok() {
            FileOutcome::HardLinked
        } else {
            return Ok(None);
        };
        // The bytes may only just have been written by a download: make them durable.
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .io("cannot sync", tmp)?;
        // If the source changed since it was hashed, hash what was actually linked.
        let id = if FileIdentity::of(&file.abs).ok() == Some(file.identity) {
            id
        } else {
            tracing::warn!(file = %file.abs.display(), "the file changed while being imported; hashing it again");
            hash_file(tmp)?
        };
        Ok(Some((id, outcome)))
    }
}
