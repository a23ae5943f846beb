//! Downloading one blob: parallel range requests written in order to a partial file that
//! outlives the process, hashed as it is written, and moved into the store only when its blake3
//! matches its name. An interrupted download is resumed from the partial file's length.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore};

use super::Mirror;
use crate::error::IoContext;
use crate::hash::BlobId;
use crate::store::{ImportProgress, Reservation};
use crate::{Error, Result};

/// What fetching one blob did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Fetched {
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes already on disk from an interrupted download.
    pub resumed: u64,
}

impl Mirror {
    /// Brings blob `id` into the store through `reservation`, which protects it.
    pub(super) async fn fetch_blob(
        &self,
        reservation: &mut Reservation<'_>,
        partial: std::path::PathBuf,
        id: BlobId,
        size: u64,
        progress: &dyn ImportProgress,
    ) -> Result<Fetched> {
        // One writer per partial file, across threads and processes: whoever comes second
        // waits, then finds the blob stored.
        let file = {
            let path = partial.clone();
            tokio::task::spawn_blocking(move || -> Result<File> {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .io("cannot open", &path)?;
                file.lock().io("cannot lock", &path)?;
                Ok(file)
            })
            .await
            .expect("the open task does not panic")?
        };
        if reservation.adopt_existing(id, size)? {
            if file.metadata().is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&partial);
            }
            return Ok(Fetched::default());
        }
        let mut fetched = Fetched::default();
        let mut from_scratch = false;
        loop {
            let have = file.metadata().io("cannot stat", &partial)?.len();
            let start = if have > size || from_scratch { 0 } else { have };
            let (file_again, hashed) = self
                .write_from(
                    file.try_clone().io("cannot reopen", &partial)?,
                    &partial,
                    id,
                    start,
                    size,
                    progress,
                )
                .await?;
            drop(file_again);
            fetched.resumed += start;
            fetched.downloaded += size - start;
            if hashed == id {
                break;
            }
            file.set_len(0).io("cannot truncate", &partial)?;
            if start > 0 && !from_scratch {
                // The bytes kept from before may be what is wrong: once more, all of them.
                tracing::warn!(blob = %id, "a resumed download did not verify; downloading it again from the start");
                from_scratch = true;
                continue;
            }
            let _ = std::fs::remove_file(&partial);
            return Err(Error::MirrorCorrupt {
                mirror: self.url().to_string(),
                blake3: id.hex(),
                actual: hashed.hex(),
            });
        }
        file.sync_all().io("cannot sync", &partial)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o444));
        }
        reservation.commit_blob(&partial, id, size)?;
        Ok(fetched)
    }

    /// Keeps the first `start` bytes of the file, downloads the rest in parts, and returns the
    /// blake3 of the whole.
    async fn write_from(
        &self,
        file: File,
        path: &std::path::Path,
        id: BlobId,
        start: u64,
        size: u64,
        progress: &dyn ImportProgress,
    ) -> Result<(File, BlobId)> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(2);
        let writer_path = path.to_path_buf();
        // Writing and hashing run on a blocking thread, in order, beside the downloads.
        let writer = tokio::task::spawn_blocking(move || -> Result<(File, blake3::Hasher)> {
            let mut file = file;
            file.set_len(start).io("cannot truncate", &writer_path)?;
            let mut hasher = blake3::Hasher::new();
            if start > 0 {
                hasher
                    .update_mmap_rayon(&writer_path)
                    .io("cannot read", &writer_path)?;
            }
            file.seek(SeekFrom::Start(start))
                .io("cannot seek", &writer_path)?;
            while let Some(part) = receiver.blocking_recv() {
                file.write_all(&part).io("cannot write", &writer_path)?;
                hasher.update(&part);
            }
            Ok((file, hasher))
        });
        if start > 0 {
            progress.advance(start);
            tracing::info!(blob = %id, resumed_bytes = start, "resuming an interrupted download");
        }
        let parts = split(start..size, self.settings.part_size);
        let mut downloads = futures::stream::iter(parts)
            .map(|range| self.get_range(id, range))
            .buffered(self.settings.concurrency);
        let mut failure = None;
        loop {
            match downloads.try_next().await {
                Ok(Some(part)) => {
                    let len = part.len() as u64;
                    if sender.send(part).await.is_err() {
                        break; // The writer failed; its error is below.
                    }
                    progress.advance(len);
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(downloads);
        drop(sender);
        let written = writer.await.expect("the writer does not panic");
        // What was written before a failure stays: it is where the next pull resumes.
        if let Some(e) = failure {
            return Err(e);
        }
        let (file, hasher) = written?;
        Ok((file, hasher.finalize().into()))
    }

    /// One range of a blob, retried (with backoff, within the retry timeout) when the request
    /// fails or the body comes back short.
    async fn get_range(&self, id: BlobId, range: Range<u64>) -> Result<Bytes> {
        let key = self.blob_key(&id);
        let began = Instant::now();
        let mut attempt = 0u32;
        loop {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            };
            let result = match self.objects.get_opts(&key, options).await {
                Ok(found) => found.bytes().await,
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(bytes) if bytes.len() as u64 == range.end - range.start => return Ok(bytes),
                Ok(bytes) => format!(
                    "expected {} bytes of range {range:?}, got {}",
                    range.end - range.start,
                    bytes.len()
                ),
                Err(e @ object_store::Error::NotFound { .. }) => {
                    return Err(self.error("read", &key, e))
                }
                Err(e) if !transient(&e) => return Err(self.error("read", &key, e)),
                Err(e) => e.to_string(),
            };
            if attempt as usize >= self.settings.retries
                || began.elapsed() >= self.settings.retry_timeout
            {
                return Err(Error::Mirror {
                    mirror: self.url().to_string(),
                    action: "read",
                    key: key.to_string(),
                    reason: format!("{error} (after {} attempts)", attempt + 1),
                });
            }
            let wait = self.settings.backoff(attempt);
            tracing::warn!(blob = %id, ?range, %error, attempt, wait_ms = wait.as_millis() as u64, "retrying a part");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Whether an error may pass: server errors and broken connections may, refusals may not.
fn transient(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::Precondition { .. }
    )
}

/// `range` cut into consecutive parts of at most `part` bytes.
fn split(range: Range<u64>, part: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let end = (at + part).min(range.end);
        out.push(at..end);
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_cut_into_consecutive_parts() {
        assert_eq!(split(0..10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(split(3..4, 4), vec![3..4]);
        assert!(split(5..5, 4).is_empty());
    }
}
