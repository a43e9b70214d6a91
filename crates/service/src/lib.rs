//! # catering-sync-service
//!
//! What runs in production: syncs scan-to-order ("扫码点餐") orders from Kafka to WeChat Pay's
//! 点餐订单信息同步 endpoint (`POST /v3/catering/orders/sync-status`). The command line, the
//! sandbox, the demo and the benchmarks are not here (the `catering-sync` crate at the repository
//! root, and `crates/sandbox`); `scripts/check-layers.sh` fails if this crate's dependency tree
//! gains the sandbox or a tool's dependency.
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
//! - [`event`], [`snapshot`], [`plan`] and [`wechatpay::rules`] are the pure core, the crate
//!   `catering-sync-core` (`crates/core`), re-exported here: record bytes → a typed order event
//!   (or every violation), the order snapshot and its merge, what an order's events call for, the
//!   request body and its digest, the changelog record, the sync-status body rules. It has no IO
//!   dependency (`scripts/check-layers.sh`).
//! - [`wechatpay`]: both halves of the APIv3 conversation seen from the merchant: loading keys,
//!   signing requests, verifying responses, classifying every outcome into a
//!   [`wechatpay::Disposition`], the HTTP client.
//! - [`clock`]: the one monotonic clock (tokio's, so tests pause it), the wall clock, and the one
//!   cancellation type.
//! - `retry`: backoff, circuit breaker, send-rate limiter (pure, time passed in).
//! - [`state`]: writes acknowledged by the broker (changelog records, tombstones, dead letters)
//!   and restoring a partition from the changelog.
//! - [`dead_letter`]: the dead-letter record and its headers; [`replay`]: `dlq replay`.
//! - [`telemetry`]: metrics, health, and the `/metrics` `/healthz` `/readyz` server.
//! - [`config`] and [`app`]: configuration, wiring and lifecycle of `run`.
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
pub mod inspect;
pub mod replay;

pub mod telemetry;

pub mod app;
pub mod config;
pub mod keys;
