//! # catering-sync
//!
//! Syncs scan-to-order ("扫码点餐") orders from Kafka to WeChat Pay's 点餐订单信息同步 endpoint
//! (`POST /v3/catering/orders/sync-status`). This crate is the command line and the tools; the
//! workspace's crates are its floors, each depending only on those below it:
//!
//! ```text
//! catering-sync          the binary: cli (run, sign, check-event, dlq replay, produce) and, with the
//! (this crate)           `tools` feature (default), demo, sandbox, bench, keys generate, the
//!                        local config
//!   ├─ catering-sync-service  (crates/service)  what runs in production: consume → post → commit /
//!   │                                           dead-letter, state, telemetry, config, app, replay
//!   ├─ catering-sync-sandbox  (crates/sandbox)  the WeChat Pay stand-in and test keys (tools only)
//!   └─ catering-sync-core     (crates/core)     pure: events, snapshot and merge, plan, body rules,
//!                                               changelog record, APIv3 messages (no IO)
//! ```
//!
//! `scripts/check-layers.sh` (run by the test command) fails if the core gains an IO dependency,
//! the sandbox depends on the service, or the service on the sandbox or a tool's dependency.
//!
//! The service's modules are re-exported at this crate's root ([`pipeline`], [`wechatpay`],
//! [`state`], [`config`], [`app`], …; the map is `catering_sync_service`'s opening doc), so
//! `catering_sync::config::Config` is the service's.
//!
//! ## This crate, in the order a command runs
//!
//! - [`cli`]: the command-line interface; `main.rs` only dispatches to it.
//! - `check`: `check-event`, the pipeline's [`plan`] applied to events from a file.
//! - [`local`]: the one local configuration the demo, the benchmarks and the tests run with,
//!   built as a value (tools).
//! - [`demo`]: the embedded demo (tools).
//! - [`mod@bench`]: benchmarks (tools).
//! - [`sandbox`] and [`keygen`]: the crate `catering-sync-sandbox`, re-exported (tools).
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub use catering_sync_service::*;

pub(crate) mod check;
pub mod cli;
pub mod logging;

#[cfg(feature = "tools")]
pub mod local;

#[cfg(feature = "tools")]
pub mod demo;

#[cfg(feature = "tools")]
pub mod bench;

#[cfg(feature = "tools")]
pub use catering_sync_sandbox as sandbox;
#[cfg(feature = "tools")]
pub use catering_sync_sandbox::keygen;

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
        builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(logging::FlatJson)
            .try_init()
    } else {
        builder.try_init()
    };
}
