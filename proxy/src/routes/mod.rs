//! The endpoints that belong to no API dialect: health, metrics and the operator's admin view.

pub mod admin;
pub mod health;
pub mod metrics;
