//! Writes that must be acknowledged by the broker (acks=all) before an offset may be committed:
//! changelog records, tombstones, fence records and dead letters.
//!
//! Each assigned partition has a sink of its own, with its own idempotent producer: at
//! revocation the partition's writes can then be flushed, counted and purged without touching
//! any other partition's (librdkafka purges and counts per producer instance). Every changelog
//! record carries the writer's owner epoch in the `catering-sync.epoch` header; a restore ignores
//! records whose epoch is below a fence already read (see [`super::restore`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::watch;

use crate::dead_letter::DeadLetter;
use crate::telemetry::metrics::Metrics;

/// Header of every changelog record: the owner epoch of the writer (decimal).
pub const EPOCH_HEADER: &str = "catering-sync.epoch";
/// Header of a fence record: the token of the owner that wrote it.
pub const FENCE_HEADER: &str = "catering-sync.fence";
/// Key of fence records: longer than any `out_order_no` (64 characters at most), so it can never
/// be an order's key, and one key per partition, so compaction keeps only the newest fence.
pub const FENCE_KEY: &str =
    "catering-sync.fence/partition-owner-barrier/this-key-is-never-an-out_order_no/v1";

/// The producer side of one partition.
pub struct Sink {
    producer: FutureProducer,
    changelog_topic: String,
    dlq_topic: String,
    partition: i32,
    epoch: AtomicU64,
    metrics: Metrics,
}

/// A write that did not happen because the partition is being given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    State,
    Tombstone,
    Fence,
    DeadLetter,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::State => "changelog record",
            Self::Tombstone => "changelog tombstone",
            Self::Fence => "changelog fence",
            Self::DeadLetter => "dead letter",
        }
    }
}

impl Sink {
    /// A sink of `partition` writing to these topics through its own `producer`.
    pub fn new(
        producer: FutureProducer,
        changelog_topic: String,
        dlq_topic: String,
        partition: i32,
        metrics: Metrics,
    ) -> Self {
        Self {
            producer,
            changelog_topic,
            dlq_topic,
            partition,
            epoch: AtomicU64::new(0),
            metrics,
        }
    }

    /// The owner epoch written with every changelog record from now on.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The owner epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Writes queued or on the wire, not yet answered.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Wait (blocking, up to `within`) until every write is answered; true when none is left.
    pub fn flush(&self, within: Duration) -> bool {
        self.producer.flush(within).is_ok() && self.producer.in_flight_count() == 0
    }

    /// Drop every write not yet answered (queued or in flight); returns how many there were.
    pub fn purge(&self) -> i32 {
        let n = self.producer.in_flight_count();
        if n > 0 {
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            let _ = self.producer.flush(Duration::from_millis(100));
        }
        n
    }

    /// Send until acknowledged; a failed send is retried (after a pause) until it succeeds or
    /// `cancel` turns true. A failure is an operator matter: logged at ERROR.
    async fn send_acked<'a>(
        &'a self,
        kind: Kind,
        record: impl Fn() -> FutureRecord<'a, [u8], [u8]>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<i64, Cancelled> {
        let mut delay = Duration::from_millis(100);
        loop {
            if *cancel.borrow() {
                return Err(Cancelled);
            }
            match self
                .producer
                .send(record(), Timeout::After(Duration::from_secs(5)))
                .await
            {
                Ok(delivery) => {
                    if kind != Kind::DeadLetter {
                        self.metrics.changelog_writes.inc();
                    }
                    return Ok(delivery.offset);
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, what = kind.label(), partition = self.partition, "write to Kafka failed; retrying (offsets are not committed past it)");
                    if *cancel.borrow() {
                        return Err(Cancelled);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = cancel.wait_for(|c| *c) => return Err(Cancelled),
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn epoch_headers(&self) -> OwnedHeaders {
        let epoch = self.epoch().to_string();
        OwnedHeaders::new_with_capacity(1).insert(Header {
            key: EPOCH_HEADER,
            value: Some(epoch.as_bytes()),
        })
    }

    /// Write an order's state to this partition of the changelog.
    pub async fn write_state(
        &self,
        out_order_no: &str,
        value: &[u8],
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        let key = out_order_no.as_bytes();
        self.send_acked(
            Kind::State,
            || {
                FutureRecord::to(&self.changelog_topic)
                    .partition(self.partition)
                    .key(key)
                    .payload(value)
                    .headers(self.epoch_headers())
            },
            cancel,
        )
        .await
        .map(|_| ())
    }

    /// Queue an order's state record now, without waiting for its acknowledgement: it is written
    /// after every record of this partition queued before it and before every one queued after
    /// it. For the acknowledged digest, whose loss costs at most a duplicate post of the same
    /// body, so it is never retried (a retry could land after a newer record of the order).
    pub fn queue_state(&self, out_order_no: &str, value: &[u8]) {
        let record = FutureRecord::to(&self.changelog_topic)
            .partition(self.partition)
            .key(out_order_no.as_bytes())
            .payload(value)
            .headers(self.epoch_headers());
        match self.producer.send_result(record) {
            Ok(delivery) => {
                let metrics = self.metrics.clone();
                let partition = self.partition;
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => {
                            metrics.changelog_writes.inc();
                            crate::pipeline::lease::crash_point(
                                crate::pipeline::lease::CrashPoint::BeforeCommit,
                            );
                        }
                        Ok(Err((e, _))) => {
                            tracing::warn!(partition, error = %e, "acknowledged-digest record not written (costs a duplicate post of the same body after a restart)")
                        }
                        Err(_) => {}
                    }
                });
            }
            Err((e, _)) => {
                tracing::warn!(partition = self.partition, error = %e, "acknowledged-digest record not queued (costs a duplicate post of the same body after a restart)")
            }
        }
    }

    /// Write a tombstone for an order.
    pub async fn tombstone(
        &self,
        out_order_no: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        self.send_acked(
            Kind::Tombstone,
            || {
                FutureRecord::<[u8], [u8]>::to(&self.changelog_topic)
                    .partition(self.partition)
                    .key(out_order_no.as_bytes())
                    .headers(self.epoch_headers())
            },
            cancel,
        )
        .await
        .map(|_| ())
    }

    /// Write a fence record with `epoch` and `token` (the owner's barrier: a restore reads up to
    /// it); returns its offset.
    pub async fn fence(
        &self,
        epoch: u64,
        token: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<i64, Cancelled> {
        let value = serde_json::json!({
            "fence": { "epoch": epoch, "token": token, "partition": self.partition }
        })
        .to_string();
        let epoch = epoch.to_string();
        self.send_acked(
            Kind::Fence,
            || {
                FutureRecord::to(&self.changelog_topic)
                    .partition(self.partition)
                    .key(FENCE_KEY.as_bytes())
                    .payload(value.as_bytes())
                    .headers(
                        OwnedHeaders::new_with_capacity(2)
                            .insert(Header {
                                key: EPOCH_HEADER,
                                value: Some(epoch.as_bytes()),
                            })
                            .insert(Header {
                                key: FENCE_HEADER,
                                value: Some(token.as_bytes()),
                            }),
                    )
            },
            cancel,
        )
        .await
    }

    /// Write a dead letter (partitioned by its key, like the original).
    pub async fn dead_letter(
        &self,
        dl: &DeadLetter,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        let headers = || {
            dl.headers.iter().fold(
                OwnedHeaders::new_with_capacity(dl.headers.len()),
                |h, (k, v)| {
                    h.insert(Header {
                        key: k,
                        value: Some(v.as_slice()),
                    })
                },
            )
        };
        self.send_acked(
            Kind::DeadLetter,
            || {
                let mut r = FutureRecord::to(&self.dlq_topic).headers(headers());
                if let Some(k) = &dl.key {
                    r = r.key(k.as_slice());
                }
                if let Some(v) = &dl.value {
                    r = r.payload(v.as_slice());
                }
                r
            },
            cancel,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fence_key_can_never_be_an_order_number() {
        assert!(super::FENCE_KEY.chars().count() > 64);
    }
}
