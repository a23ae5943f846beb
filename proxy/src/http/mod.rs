//! The HTTP side: accepting connections, routing, authentication, bodies, server-sent events,
//! and the one place errors become responses.

mod auth;
mod body;
mod connection;
mod connections;
pub mod file_limit;
mod handle;
pub mod respond;
mod router;
mod server;
pub mod sse;
mod state;
mod tracked;

pub use auth::ApiKeys;
pub use body::{read_body, read_json};
pub use respond::Body;
pub use server::{serve_connections, BoundServer, Handler};
pub use state::{MetricsText, ServerState};
