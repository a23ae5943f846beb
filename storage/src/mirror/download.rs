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
use tokio::sync::mpsc::Sender;

use super::Mirror;
use crate::error::IoContext;
use crate::fsutil::read_only;
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
            let hashed = self
                .write_from(
                    file.try_clone().io("cannot reopen", &partial)?,
                    &partial,
                    id,
                    start,
                    size,
                    progress,
                )
                .await?;
            fetched.downloaded += size - start;
            if hashed == id {
                // A retry from scratch started at 0: only kept bytes that made it count.
                fetched.resumed = start;
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
        read_only(&partial);
        reservation.commit_blob(&partial, id, size)?;
        Ok(fetched)
    }

    /// Keeps the first `start` bytes of the file, downloads the rest, and returns the blake3 of
    /// the whole.
    async fn write_from(
        &self,
        file: File,
        path: &std::path::Path,
        id: BlobId,
        start: u64,
        size: u64,
        progress: &dyn ImportProgress,
    ) -> Result<BlobId> {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let writer_path = path.to_path_buf();
        // Writing and hashing run on a blocking thread, in order, beside the downloads.
        let writer = tokio::task::spawn_blocking(move || -> Result<blake3::Hasher> {
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
            Ok(hasher)
        });
        if start > 0 {
            progress.advance(start);
            tracing::info!(blob = %id, resumed_bytes = start, "resuming an interrupted download");
        }
        let settings = &self.settings;
        let downloaded = if settings.concurrency == 1 || size - start <= settings.part_size {
            self.stream_into(&sender, id, start..size, progress).await
        } else {
            self.parts_into(&sender, id, start..size, progress).await
        };
        drop(sender);
        let written = writer.await.expect("the writer does not panic");
        // What was written before a failure stays: it is where the next pull resumes.
        downloaded?;
        Ok(written?.finalize().into())
    }

    /// `range` as parallel range requests of one part each, handed to the writer in order.
    async fn parts_into(
        &self,
        writer: &Sender<Bytes>,
        id: BlobId,
        range: Range<u64>,
        progress: &dyn ImportProgress,
    ) -> Result<()> {
        let parts = split(range, self.settings.part_size);
        let mut downloads = futures::stream::iter(parts)
            .map(|range| self.get_range(id, range))
            .buffered(self.settings.concurrency);
        while let Some(part) = downloads.try_next().await? {
            let len = part.len() as u64;
            if writer.send(part).await.is_err() {
                return Ok(()); // The writer failed; its error is the one to report.
            }
            progress.advance(len);
        }
        Ok(())
    }

    /// `range` (which ends at the blob's end) as one streamed request (`concurrency = 1`, or a
    /// range of one part), picked up from where it broke off when the connection fails.
    async fn stream_into(
        &self,
        writer: &Sender<Bytes>,
        id: BlobId,
        range: Range<u64>,
        progress: &dyn ImportProgress,
    ) -> Result<()> {
        let key = self.blob_key(&id);
        let mut patience = Patience::new();
        let mut at = range.start;
        while at < range.end {
            let options = GetOptions {
                // The whole blob is a plain GET, which servers without range support answer too.
                range: (at > 0).then_some(GetRange::Bounded(at..range.end)),
                ..GetOptions::default()
            };
            let error = match self.objects.get_opts(&key, options).await {
                Ok(found) => {
                    let mut body = found.into_stream();
                    let mut broke = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(bytes) if at + bytes.len() as u64 > range.end => {
                                broke = Some("the body is longer than the range asked for".into());
                                break;
                            }
                            Ok(bytes) => {
                                let len = bytes.len() as u64;
                                if writer.send(bytes).await.is_err() {
                                    return Ok(()); // The writer failed; its error is reported.
                                }
                                at += len;
                                progress.advance(len);
                                patience.progressed();
                            }
                            Err(e) => {
                                broke = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    match broke {
                        None if at == range.end => return Ok(()),
                        None => format!("the body ended at byte {at} of {}", range.end),
                        Some(reason) => reason,
                    }
                }
                Err(e) if !transient(&e) => return Err(self.error("read", &key, e)),
                Err(e) => e.to_string(),
            };
            self.wait_or_give_up(&mut patience, &key, id, &(at..range.end), error)
                .await?;
        }
        Ok(())
    }

    /// One range of a blob, retried when the request fails or the body comes back short.
    async fn get_range(&self, id: BlobId, range: Range<u64>) -> Result<Bytes> {
        let key = self.blob_key(&id);
        let mut patience = Patience::new();
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
                Err(e) if !transient(&e) => return Err(self.error("read", &key, e)),
                Err(e) => e.to_string(),
            };
            self.wait_or_give_up(&mut patience, &key, id, &range, error)
                .await?;
        }
    }

    /// Sleeps before the next attempt, or ends the transfer with `error` when the retries or
    /// the retry timeout are spent.
    async fn wait_or_give_up(
        &self,
        patience: &mut Patience,
        key: &object_store::path::Path,
        id: BlobId,
        range: &Range<u64>,
        error: String,
    ) -> Result<()> {
        let settings = &self.settings;
        if patience.attempt as usize >= settings.retries
            || patience.since.elapsed() >= settings.retry_timeout
        {
            return Err(Error::Mirror {
                mirror: self.url().to_string(),
                action: "read",
                key: key.to_string(),
                reason: format!("{error} (after {} attempts)", patience.attempt + 1),
            });
        }
        let wait = settings.backoff(patience.attempt);
        tracing::warn!(blob = %id, ?range, %error, attempt = patience.attempt, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
        patience.attempt += 1;
        Ok(())
    }
}

/// Failed attempts since the last byte that arrived.
struct Patience {
    attempt: u32,
    since: Instant,
}

impl Patience {
    fn new() -> Self {
        Self {
            attempt: 0,
            since: Instant::now(),
        }
    }

    /// Bytes arrived: the transfer is alive, the count and the clock start over.
    fn progressed(&mut self) {
        *self = Self::new();
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
