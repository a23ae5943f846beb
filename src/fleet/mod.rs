//! Many machines behind one endpoint: `porten hub` (the routing endpoint, holding no models)
//! and a node's joining (`porten serve --hub URL`). Where each request goes is decided by
//! `porten_hub` from the nodes' reports; this module moves the reports and the requests.

mod forward;
pub mod hub;
mod instruments;
pub mod join;
mod node_admin;
mod reports;
mod status;
pub mod token;
