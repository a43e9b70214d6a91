//! Restoring one partition's order state from the changelog, before any of its events is
//! processed. Reads from the beginning until librdkafka reports the partition's end (EOF), so it
//! does not depend on the high watermark alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::snapshot::OrderState;

/// A restored partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// Orders by number.
    pub orders: HashMap<Box<str>, Box<OrderState>>,
    /// Records read (tombstones included).
    pub records: u64,
    /// Records that could not be read (skipped, logged).
    pub unreadable: u64,
}

/// The context of readers that read partitions to their end: the end is expected, not an error.
pub struct ReadToEndContext;

impl ClientContext for ReadToEndContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let end = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !end {
            tracing::warn!(error = %error, reason, "changelog restore reader");
        }
    }
}

impl ConsumerContext for ReadToEndContext {}

/// Read changelog partition `partition` of `topic` to its end (blocking; run on a blocking thread).
pub fn restore_partition(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    deadline: Duration,
) -> Result<Restored, KafkaError> {
    let consumer: BaseConsumer<ReadToEndContext> = config.create_with_context(ReadToEndContext)?;
    let mut tpl = TopicPartitionList::new();
    // Offset 0, not `Beginning`: `Beginning` asks the leader for the log start first, and before
    // the leader is known librdkafka retries that query on a 500 ms timer (half a second of
    // every restore, measured). A log that no longer starts at 0 answers out-of-range, and
    // `auto.offset.reset=earliest` moves the reader to its start.
    tpl.add_partition_offset(topic, partition, Offset::Offset(0))?;
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut out = Restored::default();
    loop {
        if started.elapsed() > deadline {
            return Err(KafkaError::Global(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => return Err(e),
            Some(Ok(m)) => {
                out.records += 1;
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    out.unreadable += 1;
                    continue;
                };
                match m.payload() {
                    None => {
                        out.orders.remove(key);
                    }
                    Some(bytes) => match OrderState::from_record_bytes(bytes) {
                        Ok((no, state)) if no == key => {
                            out.orders.insert(key.into(), Box::new(state));
                        }
                        Ok(_) | Err(_) => {
                            out.unreadable += 1;
                            tracing::warn!(
                                partition,
                                offset = m.offset(),
                                "unreadable changelog record skipped"
                            );
                        }
                    },
                }
            }
        }
    }
    Ok(out)
}
