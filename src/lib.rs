//! The `porten` binary's testable half: command line, configuration, and the wiring of the
//! proxy's parts into a running server.
#![forbid(unsafe_code)]

pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod cpu;
pub mod fit;
pub mod fleet;
pub mod mirror_cmd;
pub mod plugin_check;
pub mod plugins;
pub mod progress;
pub mod ps_cmd;
pub mod quantize;
pub mod run_cmd;
pub mod serve;
pub mod sizing;
pub mod store_cmd;
pub mod telemetry;
pub mod tiers;
