//! Writes that must be acknowledged by the broker (acks=all) before an offset may be committed:
//! changelog records, tombstones, fence records and dead letters.
//!
//! One idempotent producer serves the process (records of all partitions share its batches);
//! each assigned partition has a [`Sink`] over it that counts the partition's unanswered writes
//! (a delivery report decrements the count), so a revocation can wait until no write of the
//! partition can still land. Every changelog record carries the writer's owner epoch in the
//! `catering-sync.epoch` header; a restore ignores records whose epoch is below a fence already
//! read (see [`super::restore`]).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
// Flushed from blocking tasks, so real time (see `crate::clock`).
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::oneshot;

use crate::clock::Cancel;
use crate::dead_letter::DeadLetter;
use crate::pipeline::lease::Lease;
use crate::telemetry::events::{self, Emit as _};
use crate::telemetry::labels::{StateTopic, WriteFailure};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::Health;

/// One write waiting for its delivery report.
pub struct Pending {
    unanswered: Arc<AtomicI64>,
    answer: Option<oneshot::Sender<Result<i64, KafkaError>>>,
}

/// The producer's context: a delivery report answers its write and counts it answered. It also
/// keeps the producer's health: a permanent produce error (topic missing, ACL, fatal producer
/// error, a record the broker can never take) makes the pod not ready and, when it lasts past
/// `exit_after`, exits the process non-zero so the platform restarts it.
pub struct Reports {
    health: Option<Arc<Health>>,
    exit_after: Duration,
    max_message_bytes: usize,
    faulty_since: std::sync::Mutex<Option<Instant>>,
}

impl ClientContext for Reports {}

impl Reports {
    fn healthy(&self) {
        let mut since = self.faulty_since.lock().unwrap_or_else(|p| p.into_inner());
        if since.take().is_some() {
            tracing::info!("Kafka accepts the service's writes again: ready");
            if let Some(h) = &self.health {
                h.set_produce_fault(false);
            }
        }
    }

    fn permanent(&self, error: &KafkaError, what: &str) {
        let now = Instant::now();
        let first = *self
            .faulty_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(now);
        if let Some(h) = &self.health {
            h.set_produce_fault(true);
        }
        if now.duration_since(first) >= self.exit_after {
            let msg = format!("writes to Kafka ({what}) have failed permanently for {:?} ({error}): exiting so the platform restarts the pod (nothing is committed past an unwritten record)", now.duration_since(first));
            crate::telemetry::exit_crash_only(&msg);
        }
    }
}

/// A produce error that retrying will not cure: the pod is not ready while it lasts.
fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        Some(
            C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::UnknownPartition
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Authentication
                | C::Fatal
                | C::Fenced
                | C::ProducerFenced
                | C::InvalidProducerEpoch
                | C::OutOfOrderSequenceNumber
                | C::InvalidRecord
                | C::MessageSizeTooLarge
                | C::InvalidMessageSize
        )
    )
}

fn is_too_large(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// A short, bounded label of a produce error for metrics.
fn failure_kind(code: Option<RDKafkaErrorCode>) -> WriteFailure {
    use RDKafkaErrorCode as C;
    match code {
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => WriteFailure::TooLarge,
        Some(C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition) => {
            WriteFailure::UnknownTopic
        }
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication,
        ) => WriteFailure::Authorization,
        Some(
            C::Fatal
            | C::Fenced
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::OutOfOrderSequenceNumber,
        ) => WriteFailure::Fatal,
        Some(C::MessageTimedOut | C::RequestTimedOut) => WriteFailure::Timeout,
        _ => WriteFailure::Other,
    }
}

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

/// Create the shared producer (no health to report to: tools and tests).
pub fn producer(config: &rdkafka::ClientConfig) -> rdkafka::error::KafkaResult<SharedProducer> {
    producer_reporting(config, None, Duration::MAX)
}

/// Create the shared producer of `run`: a permanent produce error makes `health` not ready, and
/// past `exit_after` exits the process.
pub fn producer_reporting(
    config: &rdkafka::ClientConfig,
    health: Option<Arc<Health>>,
    exit_after: Duration,
) -> rdkafka::error::KafkaResult<SharedProducer> {
    let max_message_bytes = config
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    config
        .create_with_context(Reports {
            health,
            exit_after,
            max_message_bytes,
            faulty_since: std::sync::Mutex::new(None),
        })
        .map(Arc::new)
}

/// What a dead letter's value is cut to when the broker refused it as too large.
pub const TRUNCATED_DEAD_LETTER_BYTES: usize = 16 * 1024;

/// Header of every changelog record: the owner epoch of the writer (decimal).
pub const EPOCH_HEADER: &str = "catering-sync.epoch";

/// The order's last acknowledged posts (status, time, Request-ID) on its changelog records, a
/// JSON array. A header, not a record field: readers of earlier releases, whose record decoding
/// refuses unknown fields, ignore it, so a rolling upgrade or a rollback restores every record.
pub const DELIVERIES_HEADER: &str = "catering-sync.deliveries";
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
    /// The largest state record (key, value and delivery history) that is written with its
    /// history; above it the history is left off (see [`Self::with_history`]).
    history_limit: Arc<AtomicUsize>,
}

/// The record size up to which an order's delivery history rides on its state record: Kafka's
/// default topic `max.message.bytes` (1,048,588), less room for the batch framing and the epoch
/// header, and never above the producer's own `message.max.bytes` less the same room. A topic
/// configured smaller is learnt from its first refusal.
const DEFAULT_TOPIC_MAX_MESSAGE_BYTES: usize = 1_048_588;
const RECORD_FRAMING: usize = 1024;

fn refused(history_limit: &AtomicUsize, size: usize) {
    history_limit.fetch_min(size.saturating_sub(1), Ordering::Relaxed);
}

/// A write that did not happen because the partition is being given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Why `send_acked` stopped without an acknowledgement.
enum Stop {
    Cancelled,
    /// A dead letter too large for the topic (write a truncated copy instead), or a state record
    /// too large with its delivery history (write it without).
    TooLarge,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    State,
    /// A state record with the order's delivery history: one the broker refuses as too large is
    /// written again without the history.
    StateWithHistory,
    Tombstone,
    Fence,
    DeadLetter,
    /// A dead letter already cut to fit.
    TruncatedDeadLetter,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::State | Self::StateWithHistory => "changelog record",
            Self::Tombstone => "changelog tombstone",
            Self::Fence => "changelog fence",
            Self::DeadLetter => "dead letter",
            Self::TruncatedDeadLetter => "truncated dead letter",
        }
    }

    fn topic(self) -> StateTopic {
        match self {
            Self::DeadLetter | Self::TruncatedDeadLetter => StateTopic::DeadLetter,
            Self::State | Self::StateWithHistory | Self::Tombstone | Self::Fence => {
                StateTopic::Changelog
            }
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
            changelog_topic,
            dlq_topic,
            partition,
            epoch: AtomicU64::new(0),
            metrics,
            history_limit: Arc::new(AtomicUsize::new(
                DEFAULT_TOPIC_MAX_MESSAGE_BYTES
                    .min(producer.context().max_message_bytes)
                    .saturating_sub(RECORD_FRAMING),
            )),
            producer,
            lease,
            unanswered: Arc::new(AtomicI64::new(0)),
        }
    }

    /// The history to write with a state record of `key` and `value`: none when the record
    /// would grow past what the changelog takes. The history is support's bookkeeping, never
    /// what the order is, so an order near the size limit is written without it rather than
    /// refused (and its partition stalled).
    fn with_history<'h>(
        &self,
        key: &[u8],
        value: &[u8],
        history: Option<&'h [u8]>,
    ) -> Option<&'h [u8]> {
        history.filter(|h| {
            key.len() + value.len() + h.len() <= self.history_limit.load(Ordering::Relaxed)
        })
    }

    /// The changelog refused a record of `size` bytes with its history: no larger one carries it.
    fn history_refused(&self, size: usize) {
        refused(&self.history_limit, size);
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
    /// `cancel` turns true. A failure is an operator matter: logged at ERROR, counted by kind; a
    /// permanent one makes the pod not ready (and exits past the bound). A dead letter the broker
    /// refuses as too large stops with `TooLarge`, for a truncated copy.
    async fn send_acked<'a>(
        &'a self,
        kind: Kind,
        record: impl Fn() -> BaseRecord<'a, [u8], [u8], Box<Pending>>,
        cancel: &mut Cancel,
    ) -> Result<i64, Stop> {
        let mut delay = Duration::from_millis(100);
        let started = Instant::now();
        loop {
            if cancel.is_cancelled() || !self.lease_holds() {
                return Err(Stop::Cancelled);
            }
            let answer = match self.queue(record()) {
                Ok(rx) => rx.await.unwrap_or(Err(KafkaError::Canceled)),
                Err(e) => Err(e),
            };
            let e = match answer {
                Ok(offset) => {
                    self.written(kind, started);
                    return Ok(offset);
                }
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Err(e) => e,
            };
            let code = e.rdkafka_error_code();
            let truncating =
                matches!(kind, Kind::DeadLetter | Kind::StateWithHistory) && is_too_large(code);
            events::StateWriteFailed {
                topic: kind.topic(),
                kind: failure_kind(code),
                what: kind.label(),
                partition: self.partition,
                permanent: is_permanent(code),
                truncating,
                error: &e,
            }
            .emit(&self.metrics);
            if truncating {
                return Err(Stop::TooLarge);
            }
            if is_permanent(code) {
                self.producer.context().permanent(&e, kind.label());
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    fn written(&self, kind: Kind, started: Instant) {
        self.producer.context().healthy();
        self.metrics
            .state_write_duration
            .with_label_values(&[kind.topic().as_str()])
            .observe(started.elapsed().as_secs_f64());
        if kind.topic() == StateTopic::Changelog {
            self.metrics.changelog_writes.inc();
        }
    }

    fn epoch_headers(&self) -> OwnedHeaders {
        self.state_headers(None)
    }

    /// The epoch, and the order's acknowledged posts when it has some ([`DELIVERIES_HEADER`]).
    fn state_headers(&self, deliveries: Option<&[u8]>) -> OwnedHeaders {
        let epoch = self.epoch().to_string();
        let headers = OwnedHeaders::new_with_capacity(2).insert(Header {
            key: EPOCH_HEADER,
            value: Some(epoch.as_bytes()),
        });
        match deliveries {
            Some(d) => headers.insert(Header {
                key: DELIVERIES_HEADER,
                value: Some(d),
            }),
            None => headers,
        }
    }

    /// Write an order's state to this partition of the changelog.
    pub async fn write_state(
        &self,
        out_order_no: &str,
        value: &[u8],
        cancel: &mut Cancel,
    ) -> Result<(), Cancelled> {
        self.write_state_with(out_order_no, value, None, cancel)
            .await
    }

    /// As [`Self::write_state`], with the order's acknowledged posts as a header.
    pub async fn write_state_with<'a>(
        &'a self,
        out_order_no: &'a str,
        value: &'a [u8],
        deliveries: Option<&'a [u8]>,
        cancel: &mut Cancel,
    ) -> Result<(), Cancelled> {
        let key = out_order_no.as_bytes();
        let record = |history: Option<&'a [u8]>| {
            move || {
                BaseRecord::with_opaque_to(&self.changelog_topic, self.pending())
                    .partition(self.partition)
                    .key(key)
                    .payload(value)
                    .headers(self.state_headers(history))
            }
        };
        if let Some(h) = self.with_history(key, value, deliveries) {
            match self
                .send_acked(Kind::StateWithHistory, record(Some(h)), cancel)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Stop::Cancelled) => return Err(Cancelled),
                Err(Stop::TooLarge) => self.history_refused(key.len() + value.len() + h.len()),
            }
        }
        self.send_acked(Kind::State, record(None), cancel)
            .await
            .map(|_| ())
            .map_err(|_| Cancelled)
    }

    /// Queue an order's state record now, without waiting for its acknowledgement: it is written
    /// after every record of this partition queued before it and before every one queued after
    /// it. For the acknowledged digest, whose loss costs at most a duplicate post of the same
    /// body, so it is never retried (a retry could land after a newer record of the order).
    pub fn queue_state(&self, out_order_no: &str, value: &[u8]) {
        self.queue_state_with(out_order_no, value, None);
    }

    /// As [`Self::queue_state`], with the order's acknowledged posts as a header.
    pub fn queue_state_with(&self, out_order_no: &str, value: &[u8], deliveries: Option<&[u8]>) {
        let key = out_order_no.as_bytes();
        let history = self.with_history(key, value, deliveries);
        let record = BaseRecord::with_opaque_to(&self.changelog_topic, self.pending())
            .partition(self.partition)
            .key(key)
            .payload(value)
            .headers(self.state_headers(history));
        if !self.lease_holds() {
            return;
        }
        match self.queue(record) {
            Ok(delivery) => {
                let metrics = self.metrics.clone();
                let partition = self.partition;
                let with_history = history.map(|h| {
                    (
                        self.history_limit.clone(),
                        key.len() + value.len() + h.len(),
                    )
                });
                tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => {
                            metrics.changelog_writes.inc();
                            crate::pipeline::lease::crash_point(
                                crate::pipeline::lease::CrashPoint::BeforeCommit,
                            );
                        }
                        Ok(Err(e)) => {
                            if let Some((limit, size)) =
                                with_history.filter(|_| is_too_large(e.rdkafka_error_code()))
                            {
                                // Later records of the partition leave the history off.
                                refused(&limit, size);
                            }
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
        cancel: &mut Cancel,
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
        .map_err(|_| Cancelled)
    }

    /// Write a fence record with `epoch` and `token` (the owner's barrier: a restore reads up to
    /// it); returns its offset.
    pub async fn fence(
        &self,
        epoch: u64,
        token: &str,
        cancel: &mut Cancel,
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
        .map_err(|_| Cancelled)
    }

    /// Write a dead letter (partitioned by its key, like the original). One that cannot fit the
    /// producer's `message.max.bytes`, or that the broker refuses as too large, is written as a
    /// truncated copy (`catering-sync.truncated`: size and SHA-256 of the whole value).
    pub async fn dead_letter(&self, dl: &DeadLetter, cancel: &mut Cancel) -> Result<(), Cancelled> {
        let limit = self.producer.context().max_message_bytes;
        // Headroom for the record's framing, and for the truncation header itself.
        let fits = limit.saturating_sub(1024);
        if dl.size() > fits {
            let other = dl.size() - dl.value.as_ref().map_or(0, Vec::len);
            let cut = dl.truncated(fits.saturating_sub(other));
            return self
                .send_dead_letter(&cut, Kind::TruncatedDeadLetter, cancel)
                .await
                .map_err(|_| Cancelled);
        }
        let result = match self.send_dead_letter(dl, Kind::DeadLetter, cancel).await {
            Err(Stop::TooLarge) => {
                let cut = dl.truncated(TRUNCATED_DEAD_LETTER_BYTES);
                self.send_dead_letter(&cut, Kind::TruncatedDeadLetter, cancel)
                    .await
            }
            other => other,
        };
        result.map_err(|_| Cancelled)
    }

    async fn send_dead_letter(
        &self,
        dl: &DeadLetter,
        kind: Kind,
        cancel: &mut Cancel,
    ) -> Result<(), Stop> {
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
            kind,
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
