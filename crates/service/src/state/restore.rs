//! Restoring one partition's order state from the changelog, before any of its events is
//! processed.
//!
//! Completeness does not depend on the broker's end of partition: the new owner first writes a
//! fence record (its epoch and a random token) to the changelog partition, then reads from the
//! start until it reads that very record. Everything written before the fence was acknowledged
//! before it, so it is read; the high watermark (wrong on tansu; stale with follower fetching on
//! Kafka) is never consulted.
//!
//! Fencing: every changelog record carries its writer's epoch, and epochs of successive owners
//! increase. Reading in log order, a record whose epoch is below the highest fence epoch read so
//! far was written by a previous owner after a newer owner fenced the partition (a zombie: a
//! process that lost its assignment without knowing it) and is ignored. Records of the first
//! release (no epoch header) count as epoch 0.

use std::collections::HashMap;
// A blocking task: real time (see `crate::clock`).
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::sink::{DELIVERIES_HEADER, EPOCH_HEADER, FENCE_HEADER, FENCE_KEY};
use crate::clock::Cancel;
use crate::snapshot::OrderState;

/// A restored partition.
#[derive(Debug, Default)]
pub struct Restored {
    /// Orders by number.
    pub orders: HashMap<Box<str>, Box<OrderState>>,
    /// Records read (tombstones and fences included).
    pub records: u64,
    /// Records that could not be read (skipped, logged).
    pub unreadable: u64,
    /// Records ignored because a newer owner had fenced the partition before they were written.
    pub fenced: u64,
    /// The highest epoch read before the barrier (fences and records).
    pub max_epoch: u64,
    /// The offset after the barrier: where a further read would continue.
    pub next_offset: i64,
    /// A newer owner fenced the partition after this owner's first fence: it must not process.
    pub superseded: bool,
    /// Orders whose latest record read was a zombie's (ignored): the owner writes them again, so
    /// that compaction, which keeps the latest record of a key, cannot drop the good one.
    pub stale_keys: std::collections::HashSet<Box<str>>,
}

/// Who is reading: the tokens of the fences this owner wrote, the offset of its first one, and
/// its epoch.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Every fence token this owner wrote for this assignment.
    pub tokens: Vec<String>,
    /// The offset of the first of them.
    pub first_fence: i64,
    /// The epoch of its latest fence.
    pub epoch: u64,
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

/// The headers a restore reads, found in one pass over a record's headers: for each name, the
/// value of its first header (`None` when there is none, or when the first has no value).
#[derive(Default)]
struct RecordHeaders<'a> {
    epoch: Option<Option<&'a [u8]>>,
    fence: Option<Option<&'a [u8]>>,
    deliveries: Option<Option<&'a [u8]>>,
}

impl<'a> RecordHeaders<'a> {
    fn of(m: &'a impl Message) -> Self {
        let mut found = Self::default();
        let Some(headers) = m.headers() else {
            return found;
        };
        for h in headers.iter() {
            let slot = match h.key {
                EPOCH_HEADER => &mut found.epoch,
                FENCE_HEADER => &mut found.fence,
                DELIVERIES_HEADER => &mut found.deliveries,
                _ => continue,
            };
            slot.get_or_insert(h.value);
        }
        found
    }
}

fn epoch_of(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// When a restored order last changed: its record's timestamp (every change of an order writes
/// one), or now when the broker gives none (the retention clock then starts at the restore).
fn changed_at(ts: rdkafka::Timestamp) -> crate::snapshot::order::ChangedAt {
    let now = crate::clock::unix_millis;
    let ms = ts.to_millis().filter(|t| *t > 0).map(|t| t as u64);
    crate::snapshot::order::ChangedAt(ms.unwrap_or_else(now))
}

/// Read changelog partition `partition` of `topic` from `into.next_offset` until the fence record
/// carrying `owner`'s newest token (blocking; run on a blocking thread), applying what it reads
/// to `into`. Stops early with `into.superseded` when another owner's fence follows `owner`'s
/// first fence (a newer owner writes its fence before any record). A record with a higher epoch
/// than `owner`'s (a previous owner whose clock was ahead) makes the caller fence again above it.
pub fn restore_partition(
    config: &ClientConfig,
    topic: &str,
    partition: i32,
    owner: &Owner,
    into: &mut Restored,
    deadline: Duration,
    cancelled: &Cancel,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer<ReadToEndContext> = config.create_with_context(ReadToEndContext)?;
    let mut tpl = TopicPartitionList::new();
    // An offset, not `Beginning`: `Beginning` asks the leader for the log start first, and before
    // the leader is known librdkafka retries that query on a 500 ms timer (half a second of
    // every restore, measured). A log that no longer starts at 0 answers out-of-range, and
    // `auto.offset.reset=earliest` moves the reader to its start.
    tpl.add_partition_offset(topic, partition, Offset::Offset(into.next_offset))?;
    consumer.assign(&tpl)?;
    let started = Instant::now();
    // Cancellation and the deadline are checked before the first poll, after every poll that
    // gave no record, and every `CHECK_EVERY` records (reading the clock for every record was
    // ~2% of a restore's CPU; 256 records take a few milliseconds).
    const CHECK_EVERY: u32 = 256;
    let mut since_check = CHECK_EVERY;
    loop {
        if since_check >= CHECK_EVERY {
            since_check = 0;
            if cancelled.is_cancelled() {
                return Err(KafkaError::Canceled);
            }
            if started.elapsed() > deadline {
                return Err(KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
        }
        since_check += 1;
        let m = match consumer.poll(Duration::from_millis(200)) {
            // The end of the partition as the broker reports it is not the barrier: keep reading.
            None | Some(Err(KafkaError::PartitionEOF(_))) => {
                since_check = CHECK_EVERY;
                continue;
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(m)) => m,
        };
        if let Read::Done = read_record(&m, owner, partition, into) {
            return Ok(());
        }
    }
}

/// Whether the restore reads on after a record.
enum Read {
    /// Not at the barrier yet.
    More,
    /// This owner's latest fence (done), or a newer owner's fence after ours (superseded).
    Done,
}

/// Apply one changelog record to `into`: a fence, a zombie's write, a state or a tombstone.
fn read_record(
    m: &rdkafka::message::BorrowedMessage<'_>,
    owner: &Owner,
    partition: i32,
    into: &mut Restored,
) -> Read {
    into.records += 1;
    into.next_offset = m.offset() + 1;
    let headers = RecordHeaders::of(m);
    let epoch = epoch_of(headers.epoch.flatten());
    if let Some(token) = headers.fence.flatten() {
        return read_fence(token, m.offset() > owner.first_fence, epoch, owner, into);
    }
    let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
    if epoch < into.max_epoch {
        into.fenced += 1;
        if let Some(k) = key.filter(|k| *k != FENCE_KEY) {
            into.stale_keys.insert(k.into());
        }
        tracing::warn!(
            partition,
            offset = m.offset(),
            epoch,
            fence_epoch = into.max_epoch,
            "changelog record written after a newer owner's fence (a zombie's write): ignored"
        );
        return Read::More;
    }
    into.max_epoch = epoch;
    let Some(key) = key else {
        into.unreadable += 1;
        return Read::More;
    };
    into.stale_keys.remove(key);
    if key != FENCE_KEY {
        // (A fence without its header is not state either way.)
        apply(m, key, headers.deliveries.flatten(), partition, into);
    }
    Read::More
}

/// A fence record: this owner's newest one ends the read; another owner's after this owner's
/// first fence means a newer owner took over (superseded); an older owner's raises the epoch
/// below which records are a zombie's.
fn read_fence(
    token: &[u8],
    after_own_fence: bool,
    epoch: u64,
    owner: &Owner,
    into: &mut Restored,
) -> Read {
    let own = owner.tokens.iter().any(|o| o.as_bytes() == token);
    if own && owner.tokens.last().is_some_and(|l| l.as_bytes() == token) {
        return Read::Done;
    }
    if !own && after_own_fence {
        into.superseded = true;
        return Read::Done;
    }
    if !own {
        into.max_epoch = into.max_epoch.max(epoch);
    }
    Read::More
}

/// A state record of `key`: a tombstone removes the order, a readable record of that order
/// replaces it, anything else is counted as unreadable.
fn apply(
    m: &rdkafka::message::BorrowedMessage<'_>,
    key: &str,
    deliveries: Option<&[u8]>,
    partition: i32,
    into: &mut Restored,
) {
    let record = Record {
        key,
        value: m.payload(),
        timestamp: m.timestamp(),
        deliveries,
    };
    if !apply_record(&record, into) {
        into.unreadable += 1;
        tracing::warn!(
            partition,
            offset = m.offset(),
            "unreadable changelog record skipped"
        );
    }
}

/// The parts of a changelog record a restore reads.
struct Record<'a> {
    key: &'a str,
    value: Option<&'a [u8]>,
    timestamp: rdkafka::Timestamp,
    deliveries: Option<&'a [u8]>,
}

/// Apply one state record or tombstone; false when it is not a readable record of its key.
fn apply_record(r: &Record<'_>, into: &mut Restored) -> bool {
    let Some(bytes) = r.value else {
        into.orders.remove(r.key);
        return true;
    };
    match OrderState::from_record_bytes(bytes) {
        Ok((no, mut state)) if *no == *r.key => {
            state.changed_at = changed_at(r.timestamp);
            if let Some(d) = r.deliveries {
                state.deliveries = crate::snapshot::Deliveries::from_header(d);
            }
            into.orders.insert(r.key.into(), Box::new(state));
            true
        }
        Ok(_) | Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;

    use super::{apply_record, Record, Restored};
    use crate::snapshot::{Delivery, OrderState, Status};

    #[test]
    fn a_record_restores_its_delivery_history_from_its_header_and_none_without() {
        let mut state = OrderState::default();
        state
            .deliveries
            .push(Delivery::new(Status::CreateDeal, 1, Some("08-A")));
        state
            .deliveries
            .push(Delivery::new(Status::PaySuccess, 2, Some("08-B")));
        let value = state.record_bytes("R-1");
        let header = state.deliveries.header_value().unwrap();
        let record = |deliveries| Record {
            key: "R-1",
            value: Some(&value),
            timestamp: Timestamp::CreateTime(5),
            deliveries,
        };
        let mut into = Restored::default();
        assert!(apply_record(&record(Some(&header)), &mut into));
        let back = &into.orders["R-1"].deliveries.list();
        assert_eq!(
            back,
            &state.deliveries.list(),
            "the history comes back whole"
        );
        // Without the header (a record of the previous release, or one at the size limit): the
        // order is restored, with no history; a later record with one brings it back.
        assert!(apply_record(&record(None), &mut into));
        assert!(into.orders["R-1"].deliveries.list().is_empty());
        assert_eq!(*into.orders["R-1"], state, "the same order either way");
        // An unreadable header is no history, never an unreadable record.
        assert!(apply_record(&record(Some(b"{not json")), &mut into));
        assert!(into.orders["R-1"].deliveries.list().is_empty());
        // A tombstone forgets the order; a record of another key is unreadable.
        assert!(apply_record(
            &Record {
                key: "R-1",
                value: None,
                timestamp: Timestamp::NotAvailable,
                deliveries: None
            },
            &mut into
        ));
        assert!(into.orders.is_empty());
        assert!(!apply_record(
            &Record {
                key: "R-2",
                ..record(Some(&header))
            },
            &mut into
        ));
    }

    #[test]
    fn a_restored_order_changed_when_its_record_was_written() {
        let at = 1_764_218_096_000;
        assert_eq!(super::changed_at(Timestamp::CreateTime(at)).0, at as u64);
        assert_eq!(super::changed_at(Timestamp::LogAppendTime(at)).0, at as u64);
        let now = super::changed_at(Timestamp::NotAvailable).0;
        assert!(now > at as u64, "no timestamp: the clock starts now");
    }
}
