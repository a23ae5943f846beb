//! A model as the store knows it: its files (each a blob), its metadata, and its book-keeping
//! (pin, last use). One JSON file per model, replaced atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::BlobId;
use crate::metadata::ModelMetadata;
use crate::name::ModelRef;

/// The manifest schema this code writes and reads.
pub const SCHEMA: u32 = 1;

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the model directory, `/`-separated (`tokenizer.json`, `1_Pooling/config.json`).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The blob holding the bytes.
    pub blake3: BlobId,
    /// The sha256 the source named the file by (Hugging Face cache blobs), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A model in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`SCHEMA`] for manifests written by this version.
    pub schema: u32,
    /// Its name and tag.
    pub model: ModelRef,
    /// Its files, sorted by path.
    pub files: Vec<FileEntry>,
    /// What its files say about it.
    pub metadata: ModelMetadata,
    /// Where it was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was imported (ms since the epoch).
    pub created_ms: u64,
    /// When it was last imported, loaded or served (ms since the epoch); eviction looks here.
    pub last_used_ms: u64,
    /// A pinned model is never evicted.
    #[serde(default)]
    pub pinned: bool,
}

impl Manifest {
    /// Each distinct blob with its size (a blob listed twice counts once).
    pub fn blobs(&self) -> BTreeMap<BlobId, u64> {
        self.files.iter().map(|f| (f.blake3, f.size)).collect()
    }

    /// Bytes the model occupies on its own (distinct blobs).
    pub fn size(&self) -> u64 {
        self.blobs().values().sum()
    }
}
