//! The Kafka pipeline (SPEC §5–§8).
//!
//! ```text
//! poll thread (consumer.rs) ──records──▶ partition worker (partition.rs), one per partition
//!     ▲  pause/resume, commits             │ fence the changelog, restore up to the fence first
//!     └──────── done offsets ──────────────┤ decode → per-order queue → order task (order.rs)
//!                                          │   apply → write-ahead → post (delivery.rs) → done
//!                                          └   or dead letter (acks=all) → done
//! ```

pub(crate) mod commit_queue_ffi;
pub(crate) mod commits;
pub(crate) mod consumer;
pub(crate) mod delivery;
pub mod kafka;
pub(crate) mod lease;
pub mod merchants;
pub(crate) mod offsets;
pub(crate) mod order;
pub(crate) mod partition;

use std::sync::Arc;
use std::time::Duration;

use crate::event::DecodeLimits;
use crate::snapshot::Defaults;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::Health;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Events in flight per partition before its buffer stops being read.
    pub partition_buffer: usize,
    /// Commit interval.
    pub commit_interval: Duration,
    /// Drain bound on revocation and shutdown.
    pub drain_timeout: Duration,
    /// Whole shutdown deadline (finishing received events, then the drain bound).
    pub shutdown_timeout: Duration,
    /// One event at a time per partition.
    pub sequential: bool,
    /// Retention of acknowledged final orders.
    pub final_retention: Duration,
    /// Retention of every other order, from its last change.
    pub non_final_retention: Duration,
    /// Tombstone sweep interval.
    pub sweep_interval: Duration,
}

/// Everything the pipeline's tasks share.
pub struct Shared {
    /// Consumer group (for dead-letter headers).
    pub group: String,
    /// Input topic.
    pub input_topic: String,
    /// Changelog topic.
    pub changelog_topic: String,
    /// Configured defaults.
    pub defaults: Defaults,
    /// Decode limits.
    pub limits: DecodeLimits,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// The producer of changelog records and dead letters (each partition counts its own).
    pub producer: crate::state::SharedProducer,
    /// Whether this process may still act (see [`lease`]).
    pub lease: Arc<lease::Lease>,
    /// Posts to WeChat Pay, through the merchant each order names.
    pub merchants: Arc<merchants::Merchants>,
    /// Health.
    pub health: Arc<Health>,
    /// Metrics.
    pub metrics: Metrics,
    /// Restore consumer configuration.
    pub restore_config: rdkafka::ClientConfig,
    /// Worker settings.
    pub settings: WorkerSettings,
}
