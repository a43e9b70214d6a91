//! Writes that must be acknowledged by the broker (acks=all) before an offset may be committed:
//! changelog records, tombstones and dead letters.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::sync::watch;

use crate::dead_letter::DeadLetter;
use crate::telemetry::metrics::Metrics;

/// The producer side of the pipeline.
#[derive(Clone)]
pub struct Sink {
    producer: FutureProducer,
    changelog_topic: String,
    dlq_topic: String,
    metrics: Metrics,
}

/// A write that did not happen because the partition is being given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl Sink {
    /// A sink writing to these topics.
    pub fn new(
        producer: FutureProducer,
        changelog_topic: String,
        dlq_topic: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            producer,
            changelog_topic,
            dlq_topic,
            metrics,
        }
    }

    /// The producer (for flushing at shutdown).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Send until acknowledged; a failed send is retried (after a pause) until it succeeds or
    /// `cancel` turns true. A failure is an operator matter: logged at ERROR.
    async fn send_acked<'a>(
        &'a self,
        what: &str,
        record: impl Fn() -> FutureRecord<'a, [u8], [u8]>,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self
                .producer
                .send(record(), Timeout::After(Duration::from_secs(30)))
                .await
            {
                Ok(_) => {
                    if what.starts_with("changelog") {
                        self.metrics.changelog_writes.inc();
                    }
                    return Ok(());
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, what, "write to Kafka failed; retrying (offsets are not committed past it)");
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

    /// Write an order's state to the changelog partition `partition`.
    pub async fn write_state(
        &self,
        partition: i32,
        out_order_no: &str,
        value: &[u8],
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        let key = out_order_no.as_bytes();
        self.send_acked(
            "changelog record",
            || {
                FutureRecord::to(&self.changelog_topic)
                    .partition(partition)
                    .key(key)
                    .payload(value)
            },
            cancel,
        )
        .await
    }

    /// Write a tombstone for an order.
    pub async fn tombstone(
        &self,
        partition: i32,
        out_order_no: &str,
        cancel: &mut watch::Receiver<bool>,
    ) -> Result<(), Cancelled> {
        self.send_acked(
            "changelog tombstone",
            || {
                FutureRecord::<[u8], [u8]>::to(&self.changelog_topic)
                    .partition(partition)
                    .key(out_order_no.as_bytes())
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
            "dead letter",
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
    }
}
