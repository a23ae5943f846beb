//! porten's OpenAI-compatible HTTP server and the models it hosts in-process with mistral.rs.
//!
//! ```no_run
//! # async fn run() -> porten_proxy::Result<()> {
//! use std::sync::Arc;
//! use porten_proxy::{config::{ModelSpec, ServerConfig}, models::ModelRegistry, BoundServer};
//!
//! let models = Arc::new(ModelRegistry::resolve(&[ModelSpec::new("smollm2", "/models/smollm2.gguf")])?);
//! let server = BoundServer::bind(ServerConfig::default(), models.clone()).await?;
//! tokio::spawn(async move { models.load_all().await });
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod config;
pub mod engine;
mod error;
pub mod http;
pub mod models;
pub mod openai;
mod routes;

pub use error::{Error, Origin, Result};
pub use http::BoundServer;

/// `system_fingerprint` of every answer: which porten served it.
pub const SYSTEM_FINGERPRINT: &str = concat!("porten-", env!("CARGO_PKG_VERSION"));
