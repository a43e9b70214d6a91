//! Writes that must be acknowledged by the broker (acks=all) before an offset may be committed:
//! changelog records, tombstones, fence records and dead letters.
//!
//! One idempotent producer serves the process (records of all partitions share its batches);
//! each assigned partition has a [`Sink`] over it that counts the partition's unanswered writes
//! (a delivery report decrements the count), so a revocation can wait until no write of the
//! partition can still land. Every changelog record carries the writer's owner epoch in the
//! `catering-sync.epoch` header; a restore ignores records whose epoch is below a fence already
//! read (see [`super::restore`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use tokio::sync::{oneshot, watch};

use crate::dead_letter::DeadLetter;
use crate::pipeline::lease::Lease;
use crate::telemetry::metrics::Metrics;

/// One write waiting for its delivery report.
pub struct Pending {
    unanswered: Arc<AtomicI64>,
    answer: Option<oneshot::Sender<Result<i64, KafkaError>>>,
}

/// The producer's context: a delivery report answers its write and counts it answered.
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let answer = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        pending.unanswered.fetch_sub(1, Ordering::SeqCst);
        if let Some(tx) = pending.answer {
            let _ = tx.send(answer);
        }
    }
}

/// The process's producer of changelog records and dead letters.
pub type SharedProducer = Arc<ThreadedProducer<Reports>>;

/// Create the shared producer.
pub fn producer(config: &rdkafka::ClientConfig) -> rdkafka::error::KafkaResult<SharedProducer> {
    config.create_with_context(Reports).map(Arc::new)
}

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
    producer: SharedProducer,
    changelog_topic: String,
    dlq_topic: String,
    partition: i32,
    epoch: AtomicU64,
    metrics: Metrics,
    lease: Option<Arc<Lease>>,
    /// Writes of this partition queued or on the wire, not yet answered.
    unanswered: Arc<AtomicI64>,
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
    /// A sink of `partition` writing to these topics through `producer`. With a `lease`,
    /// nothing is queued once the lease is broken (the process is about to exit).
    pub fn new(
        producer: SharedProducer,
        changelog_topic: String,
        dlq_topic: String,
        partition: i32,
        metrics: Metrics,
        lease: Option<Arc<Lease>>,
    ) -> Self {
        Self {
            producer,
            changelog_topic,
            dlq_topic,
            partition,
            epoch: AtomicU64::new(0),
            metrics,
            lease,
            unanswered: Arc::new(AtomicI64::new(0)),
        }
    }

    fn lease_holds(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.holds())
    }

    /// Queue a record; its answer comes on the returned receiver (when `answered`).
    #[allow(clippy::result_large_err)]
    fn queue(
        &self,
        record: BaseRecord<'_, [u8], [u8], Box<Pending>>,
    ) -> Result<oneshot::Receiver<Result<i64, KafkaError>>, KafkaError> {
        let (tx, rx) = oneshot::channel();
        let mut record = record;
        record.delivery_opaque.answer = Some(tx);
        self.unanswered.fetch_add(1, Ordering::SeqCst);
        match self.producer.send(record) {
            Ok(()) => Ok(rx),
            Err((e, _)) => {
                self.unanswered.fetch_sub(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn pending(&self) -> Box<Pending> {
        Box::new(Pending {
            unanswered: self.unanswered.clone(),
            answer: None,
        })
    }

    /// The owner epoch written with every changelog record from now on.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The owner epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Writes of this partition queued or on the wire, not yet answered.
    pub fn in_flight(&self) -> i64 {
        self.unanswered.load(Ordering::SeqCst)
    }

    /// Wait (blocking, up to `within`) until every write of this partition is answered; true
    /// when none is left. The producer's timeouts are derived from the drain bound, so every
    /// write is answered (delivered or failed) within it.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.in_flight() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.in_flight() == 0
    }

    /// Send until acknowledged; a failed send is retried (after a pause) until it succeeds or
    /// `cancel` turns true. A failure is an operator matter: logged at ERROR.
    async fn send_acked<'a>(
        &'a self,
        kind: Kind,
        record: impl Fn() -> BaseRecord<'a, [u8], [u8], Box<Pending>>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<i64, Cancelled> {
        let mut delay = Duration::from_millis(100);
        loop {
            if *cancel.borrow() || !self.lease_holds() {
                return Err(Cancelled);
            }
            let answer = match self.queue(record()) {
                Ok(rx) => rx.await.unwrap_or(Err(KafkaError::Canceled)),
                Err(e) => Err(e),
            };
            match answer {
                Ok(offset) => {
                    if kind != Kind::DeadLetter {
                        self.metrics.changelog_writes.inc();
                    }
                    return Ok(offset);
                }
                Err(KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => {
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
                BaseRecord::with_opaque_to(&self.changelog_topic, self.pending())
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
        let record = BaseRecord::with_opaque_to(&self.changelog_topic, self.pending())
            .partition(self.partition)
            .key(out_order_no.as_bytes())
            .payload(value)
            .headers(self.epoch_headers());
        if !self.lease_holds() {
            return;
        }
        match self.queue(record) {
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
                        Ok(Err(e)) => {
                            tracing::warn!(partition, error = %e, "changelog record not written (costs a duplicate post of the same body after a restart)")
                        }
                        Err(_) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(partition = self.partition, error = %e, "changelog record not queued (costs a duplicate post of the same body after a restart)")
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
                BaseRecord::<[u8], [u8], Box<Pending>>::with_opaque_to(
                    &self.changelog_topic,
                    self.pending(),
                )
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
                BaseRecord::with_opaque_to(&self.changelog_topic, self.pending())
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
                let mut r =
                    BaseRecord::with_opaque_to(&self.dlq_topic, self.pending()).headers(headers());
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
