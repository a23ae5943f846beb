//! porten's WebAssembly policy plugins: a wasmtime component host for the worlds of
//! `porten:policy` (0.1.0 in `wit/`, 0.2.0 in `wit/v0.2`), implementing the proxy's placement
//! policy, the store's eviction policy and the hub's fleet policy traits. A placement or
//! eviction component of either version loads; which one it is, its exports tell.
//!
//! A component is compiled once per engine and content (the artifact is cached on disk under its
//! blake3 and the engine's compatibility hash), linked once into an `InstancePre`, and
//! instantiated into a store with a memory limit. Every call runs under a deadline (epoch
//! interruption). A trap, a timeout, a memory overrun or a call that cannot be made comes back
//! as a [`PolicyFailure`]: the proxy and the store count it, log it, and let their built-in
//! policy decide. The component's instance is thrown away after a failure and made afresh from
//! the `InstancePre` for the next call.

mod engine;
mod error;
mod eviction;
mod fleet;
mod instance;
mod names;
mod placement;
mod reload;
mod versioned;

pub use engine::{Limits, PluginEngine};
pub use error::{Error, Result};
pub use eviction::WasmEvictionPolicy;
pub use fleet::WasmFleetPolicy;
pub use placement::WasmPlacementPolicy;
pub use reload::{Reloading, ReloadingEviction, ReloadingPlacement};
