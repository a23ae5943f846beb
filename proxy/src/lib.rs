//! porten's HTTP server (OpenAI's, the Responses, Anthropic's and Ollama's APIs on one port)
//! and the models it hosts in-process with mistral.rs.
//!
//! ```no_run
//! # async fn run() -> porten_proxy::Result<()> {
//! use std::sync::Arc;
//! use porten_proxy::{config::{ModelSpec, ServerConfig}, models::{ModelRegistry, Residency}, BoundServer};
//! use porten_proxy::residency::devices::DeviceBudget;
//!
//! // Models load on their first request, within a 2 GiB budget on one device.
//! let residency = Residency { devices: vec![DeviceBudget::configured(2 << 30)], ..Residency::default() };
//! let models = ModelRegistry::new(&[ModelSpec::new("smollm2", "/models/smollm2.gguf")], residency)?;
//! let server = BoundServer::bind(ServerConfig::default(), Arc::new(models), None).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]
// Unsafe code in the crate: `malloc_trim` in `residency::memory`, `sysctlbyname` (macOS only)
// in `residency::devices::apple`, and `getrlimit`/`setrlimit` in `http::file_limit`.
#![deny(unsafe_code)]

pub mod admission;
pub mod catalog;
pub mod config;
pub mod dialects;
mod drain;
pub mod engine;
mod error;
pub mod generation;
pub mod http;
pub mod models;
pub mod residency;
mod routes;
pub mod telemetry;

pub use error::{Error, Origin, Result};
pub use http::BoundServer;

/// `system_fingerprint` of every answer: which porten served it.
pub const SYSTEM_FINGERPRINT: &str = concat!("porten-", env!("CARGO_PKG_VERSION"));
