//! Order state backed by the compacted changelog topic: writing records and tombstones (and
//! dead letters, through the same idempotent producer), and restoring a partition's state.

mod restore;
mod sink;

pub use restore::{restore_partition, ReadToEndContext, Restored};
pub use sink::Sink;
