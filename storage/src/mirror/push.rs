//! `porten push`: upload the blobs the mirror lacks (whole, checked against their names as they
//! are read), then the manifest, conditionally, so that two pushes of one model never interleave
//! into a manifest neither wrote.

use std::io::Read;

use bytes::Bytes;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use super::Mirror;
use crate::error::IoContext;
use crate::hash::BlobId;
use crate::manifest::Manifest;
use crate::name::ModelRef;
use crate::store::ImportProgress;
use crate::{Error, Result, Store};

/// The smallest part S3 accepts in a multipart upload, but for the last.
const MIN_UPLOAD_PART: u64 = 5 << 20;

/// What happened to the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestOutcome {
    /// The mirror had none for this model.
    Created,
    /// The mirror's manifest named other files; it was replaced.
    Replaced,
    /// The mirror's manifest already said the same.
    Unchanged,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the mirror already held.
    pub blobs_present: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// The manifest's fate.
    pub manifest: ManifestOutcome,
}

impl Mirror {
    /// Pushes `model` from `store` to the mirror.
    pub async fn push(
        &self,
        store: &Store,
        model: &ModelRef,
        progress: &dyn ImportProgress,
    ) -> Result<PushReport> {
        if self.read_only {
            return Err(Error::MirrorConfig(format!(
                "{} is a read-only mirror (plain HTTP); push to its bucket instead",
                self.url()
            )));
        }
        let local = store.manifest(model)?;
        let mut missing = Vec::new();
        let mut report = PushReport {
            blobs_uploaded: 0,
            blobs_present: 0,
            bytes_uploaded: 0,
            manifest: ManifestOutcome::Unchanged,
        };
        for (id, size) in local.blobs() {
            let key = self.blob_key(&id);
            match self.objects.head(&key).await {
                Ok(meta) if meta.size == size => report.blobs_present += 1,
                // A blob of the wrong size is not this content: replace it.
                Ok(_) | Err(object_store::Error::NotFound { .. }) => missing.push((id, size)),
                Err(e) => return Err(self.error("inspect", &key, e)),
            }
        }
        progress.phase("uploading", missing.iter().map(|(_, s)| s).sum());
        for (id, size) in missing {
            let path = store.layout().blob(&id);
            self.upload_blob(&path, id, size, model, progress).await?;
            report.blobs_uploaded += 1;
            report.bytes_uploaded += size;
        }
        progress.phase_done();
        report.manifest = self.publish_manifest(&local).await?;
        tracing::info!(
            model = %model,
            mirror = %self.url(),
            uploaded = report.blobs_uploaded,
            already_there = report.blobs_present,
            "pushed"
        );
        Ok(report)
    }

    /// Uploads one blob, hashing it as it is read: a local blob that has rotted is not
    /// published (the upload is aborted and nothing becomes visible).
    async fn upload_blob(
        &self,
        path: &std::path::Path,
        id: BlobId,
        size: u64,
        model: &ModelRef,
        progress: &dyn ImportProgress,
    ) -> Result<()> {
        let key = self.blob_key(&id);
        // S3 refuses multipart parts under 5 MiB (all but the last).
        let part_size = self.settings.part_size.max(MIN_UPLOAD_PART) as usize;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(2);
        let reader_path = path.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || -> Result<BlobId> {
            let mut file = std::fs::File::open(&reader_path).io("cannot open", &reader_path)?;
            let mut hasher = blake3::Hasher::new();
            loop {
                let mut chunk = Vec::with_capacity(part_size);
                (&mut file)
                    .take(part_size as u64)
                    .read_to_end(&mut chunk)
                    .io("cannot read", &reader_path)?;
                if chunk.is_empty() {
                    break;
                }
                hasher.update(&chunk);
                if sender.blocking_send(Bytes::from(chunk)).is_err() {
                    break;
                }
            }
            Ok(hasher.finalize().into())
        });
        let corrupt = |actual: BlobId| {
            tracing::error!(blob = %id, actual = %actual, "a local blob does not hash to its name; not pushing it");
            Error::Corrupt {
                model: model.to_string(),
                file: path.display().to_string(),
                blake3: id.hex(),
            }
        };
        if size <= part_size as u64 {
            // One request: read it all, check it, put it.
            let mut chunks = Vec::new();
            while let Some(chunk) = receiver.recv().await {
                chunks.push(chunk);
            }
            let hashed = reader.await.expect("the reader does not panic")?;
            if hashed != id {
                return Err(corrupt(hashed));
            }
            self.objects
                .put(&key, chunks.into_iter().collect::<PutPayload>())
                .await
                .map_err(|e| self.error("upload", &key, e))?;
            progress.advance(size);
            return Ok(());
        }
        let upload = self
            .objects
            .put_multipart(&key)
            .await
            .map_err(|e| self.error("start uploading", &key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let mut failure = None;
        while let Some(chunk) = receiver.recv().await {
            if let Err(e) = writer.wait_for_capacity(self.settings.concurrency).await {
                failure = Some(self.error("upload", &key, e));
                break;
            }
            let len = chunk.len() as u64;
            writer.put(chunk);
            progress.advance(len);
        }
        drop(receiver);
        let hashed = reader.await.expect("the reader does not panic");
        let failure = match (failure, hashed) {
            (Some(e), _) => Some(e),
            (None, Err(e)) => Some(e),
            (None, Ok(hashed)) if hashed != id => Some(corrupt(hashed)),
            (None, Ok(_)) => None,
        };
        if let Some(e) = failure {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "could not abort a multipart upload; the bucket's lifecycle rules will remove it");
            }
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| self.error("finish uploading", &key, e))?;
        Ok(())
    }

    /// Writes the manifest: created only if absent, replaced only if it is still the version
    /// read here. Stores without conditional writes get a plain write.
    async fn publish_manifest(&self, local: &Manifest) -> Result<ManifestOutcome> {
        let key = self.manifest_key(&local.model);
        let published = Manifest {
            source: None,
            last_used_ms: local.created_ms,
            pinned: false,
            ..local.clone()
        };
        let existing = match self.objects.get(&key).await {
            Ok(found) => {
                let meta = found.meta.clone();
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| self.error("read", &key, e))?;
                Some((meta, serde_json::from_slice::<Manifest>(&bytes).ok()))
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(self.error("read", &key, e)),
        };
        let (mode, outcome) = match existing {
            Some((_, Some(theirs)))
                if theirs.files == published.files && theirs.metadata == published.metadata =>
            {
                return Ok(ManifestOutcome::Unchanged)
            }
            Some((meta, _)) => (
                PutMode::Update(UpdateVersion {
                    e_tag: meta.e_tag,
                    version: meta.version,
                }),
                ManifestOutcome::Replaced,
            ),
            None => (PutMode::Create, ManifestOutcome::Created),
        };
        let body = serde_json::to_vec_pretty(&published).expect("manifests serialize");
        let put = |mode: PutMode| {
            self.objects
                .put_opts(&key, PutPayload::from(body.clone()), PutOptions::from(mode))
        };
        match put(mode).await {
            Ok(_) => Ok(outcome),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(Error::PushConflict {
                model: local.model.to_string(),
            }),
            Err(object_store::Error::NotImplemented { .. }) => {
                tracing::debug!(mirror = %self.url(), "no conditional writes here; writing the manifest unconditionally");
                put(PutMode::Overwrite)
                    .await
                    .map_err(|e| self.error("write", &key, e))?;
                Ok(outcome)
            }
            Err(e) => Err(self.error("write", &key, e)),
        }
    }
}
