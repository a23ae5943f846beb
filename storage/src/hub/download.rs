//! One file from the Hub into the pull's staging folder: a partial file (`PATH.partial`) is
//! resumed with a range request when the server honours it (started over when it answers the
//! whole file), every byte is hashed with sha256 on the way, and the file is renamed into place
//! only when its sha256 is the one the Hub's listing gave. A finished file from an interrupted
//! pull is checked and kept.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{checked, hub_error, Hub, HubFile, HubRef};
use crate::hash::BlobId;
use crate::store::ImportProgress;
use crate::Result;

/// A file in the staging folder, whole and verified: its blake3 (the store's name for it) and
/// the bytes downloaded for it now.
pub(super) struct Fetched {
    pub(super) blake3: BlobId,
    pub(super) downloaded: u64,
}

/// Downloads `file` into `staging`, hashing it with sha256 (checked against the Hub) and
/// blake3 (the store's name) on the way.
pub(super) async fn fetch(
    hub: &Hub,
    at: &HubRef,
    file: &HubFile,
    staging: &Path,
    progress: &dyn ImportProgress,
) -> Result<Fetched> {
    let target = staging.join(&file.path);
    let io = |what: &str, e: std::io::Error| {
        hub_error(&at.repo, format!("{what} {}: {e}", target.display()))
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("cannot create the folder of", e))?;
    }
    if target.is_file() {
        let (size, hashes) = hash_prefix(&target).map_err(|e| io("cannot read", e))?;
        let (digest, blake3) = hashes.finish();
        if size == file.size && file.sha256.as_deref().is_none_or(|s| s == digest) {
            progress.advance(size);
            return Ok(Fetched {
                blake3,
                downloaded: 0,
            });
        }
        std::fs::remove_file(&target).map_err(|e| io("cannot remove", e))?;
    }
    let partial = target.with_file_name(format!(
        "{}.partial",
        target.file_name().unwrap_or_default().to_string_lossy()
    ));
    let (mut have, mut hasher) = hash_prefix(&partial).unwrap_or_default();
    let url = format!(
        "{}/{}/resolve/{}/{}",
        hub.endpoint(),
        at.repo,
        at.revision,
        file.path
    );
    let mut request = hub.get(&url);
    if have > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request
        .send()
        .await
        .map_err(|e| hub_error(&at.repo, format!("cannot download {}: {e}", file.path)))?;
    let mut response = checked(response, at, &file.path).await?;
    let resumed = response.status() == reqwest::StatusCode::PARTIAL_CONTENT;
    if have > 0 && !resumed {
        // The server sends the whole file: start over.
        have = 0;
        hasher = Hashes::default();
    }
    progress.advance(have);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(&partial)
        .map_err(|e| io("cannot write", e))?;
    let mut downloaded = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        hub_error(
            &at.repo,
            format!("the download of {} broke off: {e}", file.path),
        )
    })? {
        out.write_all(&chunk).map_err(|e| io("cannot write", e))?;
        hasher.update(&chunk);
        downloaded += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    out.sync_all().map_err(|e| io("cannot sync", e))?;
    drop(out);
    let size = have + downloaded;
    let (digest, blake3) = hasher.finish();
    let wrong_size = size != file.size;
    let wrong_hash = file.sha256.as_deref().is_some_and(|s| s != digest);
    if wrong_size || wrong_hash {
        let _ = std::fs::remove_file(&partial);
        return Err(hub_error(
            &at.repo,
            format!(
                "{} arrived corrupt ({size} bytes, sha256 {digest}; the Hub lists {} bytes, sha256 \
                 {}); nothing was stored",
                file.path,
                file.size,
                file.sha256.as_deref().unwrap_or("none")
            ),
        ));
    }
    std::fs::rename(&partial, &target).map_err(|e| io("cannot rename into", e))?;
    Ok(Fetched { blake3, downloaded })
}

/// sha256 (the Hub's name for a file) and blake3 (the store's), fed together.
#[derive(Default)]
struct Hashes {
    sha256: Sha256,
    blake3: blake3::Hasher,
}

impl Hashes {
    fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.blake3.update(bytes);
    }

    fn finish(self) -> (String, BlobId) {
        (hex(&self.sha256.finalize()), self.blake3.finalize().into())
    }
}

/// Puts `local` (a store blob or a Hugging Face cache blob with the file's sha256) where the
/// download of `file` would go, a hard link else a copy; its blake3.
pub(super) fn link(local: &Path, staging: &Path, file: &HubFile) -> crate::Result<BlobId> {
    let target = staging.join(&file.path);
    let io = |e: std::io::Error| hub_error("", format!("cannot link {}: {e}", target.display()));
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let _ = std::fs::remove_file(&target);
    if std::fs::hard_link(local, &target).is_err() {
        std::fs::copy(local, &target).map_err(io)?;
    }
    crate::hash::hash_file(&target)
}

fn hash_prefix(path: &Path) -> std::io::Result<(u64, Hashes)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hashes::default();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((size, hasher));
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
