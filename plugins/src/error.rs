//! The one error type of the plugin host: what can go wrong before a plugin makes decisions.
//! (What goes wrong during a decision is a policy failure, handled by the caller's fallback.)

use std::path::PathBuf;

/// Loading a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a component wasmtime can compile (or a core module, or garbage).
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// A component, but not of the world porten needs: wrong exports, or imports porten does
    /// not provide (a plugin gets no filesystem, network or clock).
    #[error("{path} does not implement the `{world}` world of porten:policy: {reason}")]
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// The world it should implement.
        world: &'static str,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The engine could not be set up.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

/// The plugin host's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
