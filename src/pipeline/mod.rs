//! The Kafka pipeline: consumer loop, per-order scheduling, offset tracking, backpressure,
//! rebalance.

pub mod offsets;
