//! # catering-sync
//!
//! Syncs scan-to-order ("扫码点餐") orders from Kafka to WeChat Pay's 点餐订单信息同步 endpoint
//! (`POST /v3/catering/orders/sync-status`).
//!
//! ## Data flow
//!
//! ```text
//! order events (Kafka) → decode & validate → per-order sequencing → merge into the order snapshot
//!   → sign (APIv3, RSA-SHA256) → POST sync-status → verify the signed 204 → commit the offset
//!                                    └── permanent failure / poison event → dead-letter topic → commit
//! ```
//!
//! ## Layout, in the order data moves
//!
//! - [`pipeline`]: the Kafka side. A poll thread owns the group consumer (routing, pause/resume,
//!   commits, rebalances); a worker per partition restores state and runs orders concurrently,
//!   each order's events in sequence; `pipeline::offsets` decides what may be committed;
//!   `pipeline::delivery` posts with retries, breaker and rate limit (crate-internal modules:
//!   only `pipeline::kafka`, the client settings, is public).
//! - [`event`], [`snapshot`] and [`wechatpay::rules`] are the pure core, the crate
//!   `catering-sync-core` (`crates/core`), re-exported here: record bytes → a typed order event
//!   (or every violation), the order snapshot and its merge, the request body and its digest, the
//!   changelog record, the sync-status body rules. It has no IO dependency
//!   (`scripts/check-layers.sh`).
//! - [`wechatpay`]: both halves of the APIv3 conversation seen from the merchant: loading keys,
//!   signing requests, verifying responses, classifying every outcome into a
//!   [`wechatpay::Disposition`], the HTTP client (the body rules, [`wechatpay::rules`], are the
//!   core's, re-exported).
//! - [`clock`]: the one monotonic clock (tokio's, so tests pause it), the wall clock, and the one
//!   cancellation type.
//! - `retry`: backoff, circuit breaker, send-rate limiter (pure, time passed in).
//! - [`state`]: writes acknowledged by the broker (changelog records, tombstones, dead letters)
//!   and restoring a partition from the changelog.
//! - [`dead_letter`]: the dead-letter record and its headers; `replay`: `dlq replay`.
//! - [`telemetry`]: metrics, health, and the `/metrics` `/healthz` `/readyz` server.
//! - [`config`] and [`app`]: configuration, wiring and lifecycle of `run`.
//! - [`sandbox`]: a faithful stand-in for the endpoint (independent RSA implementation, the same
//!   body rules, fault injection), used by tests, the demo and benchmarks; with [`keygen`] (test
//!   keys), the crate `catering-sync-sandbox` (`crates/sandbox`), which depends on the core only
//!   (`scripts/check-layers.sh`), re-exported here.
//! - [`demo`], `check`, [`mod@bench`]: the embedded demo, `check-event`, benchmarks;
//!   [`local`]: the one local configuration they and the tests run with, built as a value.
//! - [`cli`]: the command-line interface; `main.rs` only dispatches to it.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod clock;
pub mod pipeline;

pub use catering_sync_core::{event, plan, snapshot};

pub mod wechatpay;

pub(crate) mod retry;
pub mod state;

pub mod dead_letter;
pub(crate) mod replay;

pub mod telemetry;

pub mod app;
pub mod config;

#[cfg(feature = "tools")]
pub use catering_sync_sandbox as sandbox;

#[cfg(feature = "tools")]
pub mod bench;
pub(crate) mod check;
#[cfg(feature = "tools")]
pub mod demo;
#[cfg(feature = "tools")]
pub mod local;
#[cfg(feature = "tools")]
pub use catering_sync_sandbox::keygen;

pub mod cli;

/// Install the tracing subscriber: JSON or pretty on stderr, filtered by `RUST_LOG` (default
/// `info`). Safe to call twice (the second call does nothing).
pub fn telemetry_init(format: cli::LogFormat) {
    telemetry_init_with(format, "info");
}

/// As [`telemetry_init`], with `default_level` when `RUST_LOG` is not set.
pub fn telemetry_init_with(format: cli::LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        cli::LogFormat::Json => true,
        cli::LogFormat::Pretty => false,
        cli::LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
