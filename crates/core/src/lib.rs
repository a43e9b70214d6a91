//! # catering-sync-core
//!
//! The pure core of catering-sync: everything that decides what an order's events mean and what
//! WeChat Pay is sent, with no IO (no tokio, Kafka, HTTP or signing; `scripts/check-layers.sh`
//! enforces it). The service (`catering-sync`) executes what this crate decides; the sandbox
//! checks bodies with the same rules.
//!
//! In the order data moves:
//!
//! - [`event`]: the input contract: record bytes → a typed [`event::OrderEvent`], or every
//!   violation (`malformed` / `invalid_event`), with strict JSON ([`event::parse_strict`]).
//! - [`snapshot`]: the order snapshot, typed and compact; applying events (merge, status only
//!   forward, validation), the request body and its digest, the changelog record.
//! - [`plan`]: an order's work decided without IO — what to apply, post (coalesced),
//!   dead-letter and mark done; the service executes it, `check-event` and the demo follow it.
//! - [`rules`]: the sync-status body rules (every violation with its field path).
//! - [`apiv3`]: the sync-status path, the canonical messages signatures cover, the
//!   `Authorization` header built and parsed; [`pem`]: PEM text → DER, serials as hex.
//! - [`dead_letter`]: the dead-letter reasons and header names.
//! - [`fixtures`]: the deterministic order-fixture factory of benchmarks and tests.
#![deny(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod apiv3;
pub mod dead_letter;
pub mod event;
pub mod pem;
pub mod plan;
pub mod rules;
pub mod snapshot;

pub mod fixtures;
