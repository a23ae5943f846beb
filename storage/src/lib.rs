//! porten's weight store: model files kept once each as blobs named by their blake3 hash,
//! manifests that name models, and a hard disk budget enforced by evicting whole models.
//!
//! ```no_run
//! use porten_storage::{ImportMode, ImportOptions, ModelRef, NoProgress, Store, StoreConfig};
//!
//! let store = std::sync::Arc::new(Store::open("/var/lib/porten/store", StoreConfig {
//!     budget_bytes: Some(50 << 30),
//!     ..StoreConfig::default()
//! })?);
//! let options = ImportOptions {
//!     model: ModelRef::parse("smollm2")?,
//!     mode: ImportMode::Link,
//!     made_from: None,
//! };
//! store.import("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), &options, &NoProgress)?;
//! let checkout = store.checkout(&options.model)?; // verified, leased, ready to load
//! println!("load from {}", checkout.dir().display());
//! # Ok::<(), porten_storage::Error>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod eviction;
mod fsutil;
pub mod hash;
pub mod hub;
pub mod layout;
pub mod manifest;
pub mod metadata;
pub mod mirror;
mod name;
mod session;
pub mod source;
mod store;
mod telemetry;

pub use error::{Error, Result};
pub use eviction::{
    EvictionCandidate, EvictionPolicy, EvictionRequest, LeastRecentlyUsed, PolicyFailure,
};
pub use hash::BlobId;
pub use manifest::{FileEntry, Manifest};
pub use metadata::{ModelMetadata, WeightFormat};
pub use mirror::{Mirror, MirrorSettings, PullReport, PushReport};
pub use name::{ModelRef, DEFAULT_TAG};
pub use store::NoProgress;
pub use store::{
    Checkout, DiskUsage, FileOutcome, GcReport, ImportMode, ImportOptions, ImportProgress,
    ImportReport, ModelSummary, Problem, Reservation, Store, StoreConfig, VerifyReport,
};
