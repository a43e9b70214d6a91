//! Health, metrics, notable occurrences as events (their log line and metric together), and
//! the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).

pub mod events;
pub mod health;
pub mod labels;
pub mod metrics;
pub mod server;

pub use health::Health;
