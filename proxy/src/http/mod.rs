//! The HTTP side: accepting connections, routing, authentication, bodies, server-sent events,
//! and the one place errors become responses.

mod auth;
mod body;
pub mod respond;
mod router;
mod server;
pub mod sse;
mod state;

pub use auth::ApiKeys;
pub use body::read_json;
pub use respond::Body;
pub use server::BoundServer;
pub use state::{MetricsText, ServerState};
