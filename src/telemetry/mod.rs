//! Health and the HTTP endpoints (`/healthz`, `/readyz`).

pub mod health;
pub mod metrics;
pub mod server;

pub use health::Health;
