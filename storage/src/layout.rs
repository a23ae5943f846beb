//! Where everything lives under the store's root. The format version is part of every path, so a
//! future layout can sit beside this one while it migrates.
//!
//! ```text
//! <root>/lock                                   held while the store's books change
//! <root>/blobs-v1/blake3/ab/abcdef...           content, named by blake3
//! <root>/manifests-v1/<name>/<tag>.json         a model: files -> blobs, metadata, pin, last use
//! <root>/models-v1/<name>/<tag>/...             links into blobs-v1 that engines load from
//! <root>/tmp-v1/<session>/                      one per running process: lock, books, temp files
//! <root>/quarantine-v1/<blake3>.<unix-ms>       corrupt blobs, kept for inspection
//! <root>/partial-v1/<blake3>                    a download in progress (or interrupted: resumed)
//! ```

use std::path::{Path, PathBuf};

use crate::hash::BlobId;
use crate::name::ModelRef;

/// The store's paths.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root` (usually `$PORTEN_HOME/store`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file locked while the books change.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// Parent of every blob fan-out directory.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs-v1").join("blake3")
    }

    /// Where the blob with this id lives.
    pub fn blob(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.blobs_dir().join(&hex[..2]).join(hex)
    }

    /// Parent of every manifest.
    pub fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests-v1")
    }

    /// Where a model's manifest lives.
    pub fn manifest(&self, model: &ModelRef) -> PathBuf {
        self.manifests_dir()
            .join(&model.name)
            .join(format!("{}.json", model.tag))
    }

    /// The directory of links that engines load a model from.
    pub fn materialized(&self, model: &ModelRef) -> PathBuf {
        self.root
            .join("models-v1")
            .join(&model.name)
            .join(&model.tag)
    }

    /// Parent of the per-process session directories.
    pub fn sessions_dir(&self) -> PathBuf {
        self.root.join("tmp-v1")
    }

    /// Where corrupt blobs are moved.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine-v1")
    }

    /// Where pulls from a Hugging Face Hub keep their files while they download: one folder per
    /// repository and revision, so an interrupted pull resumes.
    pub fn hub_downloads(&self) -> PathBuf {
        self.root.join("hub-downloads-v1")
    }

    /// Parent of the partial downloads.
    pub fn partials_dir(&self) -> PathBuf {
        self.root.join("partial-v1")
    }

    /// Where a download of blob `id` writes until it is complete and verified. It outlives the
    /// process that started it, so that the next pull resumes from it.
    pub fn partial(&self, id: &BlobId) -> PathBuf {
        self.partials_dir().join(id.hex())
    }

    /// Every directory the store needs, created on open.
    pub fn dirs(&self) -> [PathBuf; 6] {
        [
            self.blobs_dir(),
            self.manifests_dir(),
            self.root.join("models-v1"),
            self.sessions_dir(),
            self.quarantine_dir(),
            self.partials_dir(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_the_format_version_and_fan_out_by_the_first_byte() {
        let layout = Layout::new("/s");
        let id: BlobId = "ab".repeat(32).parse().unwrap();
        assert_eq!(
            layout.blob(&id),
            PathBuf::from(format!("/s/blobs-v1/blake3/ab/{}", "ab".repeat(32)))
        );
        let model = ModelRef::parse("org/m:q4").unwrap();
        assert_eq!(
            layout.manifest(&model),
            PathBuf::from("/s/manifests-v1/org/m/q4.json")
        );
        assert_eq!(
            layout.materialized(&model),
            PathBuf::from("/s/models-v1/org/m/q4")
        );
    }
}
