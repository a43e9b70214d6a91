//! Order state backed by the compacted changelog topic: writing records, tombstones and fences
//! (and dead letters, through the same per-partition idempotent producer), and restoring a
//! partition's state up to its owner's fence.

mod restore;
mod sink;

pub use restore::{restore_partition, Owner, ReadToEndContext, Restored};
pub use sink::{
    producer, producer_reporting, Cancelled, SharedProducer, Sink, DELIVERIES_HEADER, EPOCH_HEADER,
    FENCE_HEADER, FENCE_KEY,
};
