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
//! ## Layout
//!
//! - [`event`]: the input contract: record bytes → a typed order event, or every violation
//!   (`malformed` / `invalid_event`).
//! - [`snapshot`]: the order snapshot, typed and compact; applying events (merge, status only
//!   forward, validation), the request body and its digest, the changelog record.
//! - [`wechatpay`]: both halves of the APIv3 conversation seen from the merchant: loading keys,
//!   signing requests, verifying responses, classifying every outcome into a [`wechatpay::Disposition`],
//!   the HTTP client, and the sync-status body rules ([`wechatpay::rules`]).
//! - [`sandbox`]: a faithful stand-in for the endpoint (independent RSA implementation, the same
//!   body rules, fault injection), used by tests, the demo and benchmarks.
//! - [`keygen`]: test and demo key material (merchant key pair, WeChat Pay public key).
//! - [`bench`]: the signing benchmark.
//! - [`cli`]: the command-line interface; `main.rs` only dispatches to it.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod event;
pub mod pipeline;
pub mod replay;
pub mod retry;
pub mod snapshot;
pub mod state;
pub mod wechatpay;

pub mod sandbox;

pub mod telemetry;

pub mod app;
pub mod bench;
pub mod check;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod demo;
pub mod keygen;

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
