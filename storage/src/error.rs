//! The one error type of the store.

use std::path::PathBuf;

/// Everything that can go wrong in the store. Each variant says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model name or tag that the store will not accept.
    #[error("invalid model name `{name}`: {reason}")]
    InvalidName {
        /// What was given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No manifest under that name.
    #[error("no model `{0}` in the store (see `porten ls`)")]
    ModelNotFound(String),
    /// The import source is not something the store can read as a model.
    #[error("cannot import {path}: {reason}")]
    BadSource {
        /// The path given to import.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk budget cannot hold the bytes even after evicting everything evictable.
    #[error(
        "not enough room in the store: {needed} bytes needed, {available} free under the \
         {budget}-byte budget, and evicting every unpinned, unloaded model would free only \
         {freeable} more; nothing was evicted"
    )]
    NoRoom {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes free under the budget right now.
        available: u64,
        /// Bytes that eviction could free.
        freeable: u64,
        /// The budget.
        budget: u64,
    },
    /// The operation would touch a pinned or loaded model.
    #[error("model `{model}` is {why}")]
    ModelBusy {
        /// The model.
        model: String,
        /// "pinned" or "loaded by a running porten".
        why: &'static str,
    },
    /// A blob whose bytes no longer hash to its name; it has been moved to quarantine.
    #[error(
        "blob {blake3} of `{model}` ({file}) is corrupt and was quarantined; re-import the model"
    )]
    Corrupt {
        /// The model it belongs to.
        model: String,
        /// The file inside the model.
        file: String,
        /// The expected hash.
        blake3: String,
    },
    /// A blob listed by a manifest is absent.
    #[error("blob {blake3} of `{model}` ({file}) is missing; re-import the model")]
    MissingBlob {
        /// The model it belongs to.
        model: String,
        /// The file inside the model.
        file: String,
        /// The expected hash.
        blake3: String,
    },
    /// A manifest file that cannot be parsed.
    #[error("manifest {path} is unreadable: {reason}")]
    BadManifest {
        /// Where it is.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// The mirror URL or its options cannot be used.
    #[error("mirror configuration: {0}")]
    MirrorConfig(String),
    /// The mirror failed an operation (after retries, for failures that retrying can cure).
    #[error("mirror {mirror}: cannot {action} {key}: {reason}")]
    Mirror {
        /// The mirror's URL.
        mirror: String,
        /// What porten was doing (`read`, `upload`, `list`...).
        action: &'static str,
        /// The object.
        key: String,
        /// What the mirror or the network said.
        reason: String,
    },
    /// The mirror has no manifest under that name.
    #[error("no model `{model}` in the mirror {mirror} (see `porten ls --remote`)")]
    NotInMirror {
        /// The model asked for.
        model: String,
        /// The mirror's URL.
        mirror: String,
    },
    /// A Hugging Face Hub pull failed: the repository, revision, quantization or a file is
    /// missing, gated or private, or a download arrived corrupt.
    #[error("cannot pull {repo} from the Hub: {reason}")]
    Hub {
        /// `ORG/REPO`.
        repo: String,
        /// What went wrong, with what exists where it helps.
        reason: String,
    },
    /// Bytes from the mirror that do not hash to the blob's name. Nothing was stored.
    #[error(
        "blob {blake3} from the mirror {mirror} is corrupt (its bytes hash to {actual}); \
         nothing was stored"
    )]
    MirrorCorrupt {
        /// The mirror's URL.
        mirror: String,
        /// The name (expected hash).
        blake3: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A manifest in the mirror that porten will not use.
    #[error("the mirror's manifest for `{model}` is unusable: {reason}")]
    BadMirrorManifest {
        /// The model.
        model: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another push changed the model's manifest in the mirror while this one ran.
    #[error("the mirror's manifest for `{model}` changed during this push; push again")]
    PushConflict {
        /// The model.
        model: String,
    },
    /// A filesystem error, with the path it happened on.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the store was doing.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether trying the same operation again later can succeed (room may free up, a loaded model
    /// may be unloaded); a corrupt blob or a bad name stays that way.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NoRoom { .. } | Error::ModelBusy { .. } | Error::Mirror { .. }
        )
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches an action and a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.into(),
            source,
        })
    }
}
