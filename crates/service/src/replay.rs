//! `catering-sync dlq replay`: re-publish chosen dead letters to the input topic, each to the
//! partition its original record came from (so it meets its order's state), with the original
//! key, value and headers, the `catering-sync.*` failure headers removed, and a
//! `catering-sync.replayed-from` header naming the dead letter. Filters by reason, failure time
//! and order number; `--dry-run` lists what would be sent; a rate limit spaces the sends.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::clock::Instant;
use crate::config::KafkaConfig;
use crate::dead_letter::{header, header_value, Reason};
use crate::pipeline::kafka;

/// Which dead letters to replay.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these reasons (all when empty).
    pub reasons: Vec<Reason>,
    /// Failed at or after.
    pub since: Option<OffsetDateTime>,
    /// Failed before.
    pub until: Option<OffsetDateTime>,
    /// Only these order numbers (all when empty); matched against the value's `out_order_no`,
    /// or the key when the value is not an event.
    pub orders: Vec<String>,
}

/// One dead letter read back.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    /// DLQ partition.
    pub partition: i32,
    /// DLQ offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp, Unix ms, when the broker gives one.
    pub timestamp_ms: Option<i64>,
}

impl DeadLetterRecord {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The order number, from the value or the key.
    pub fn out_order_no(&self) -> Option<String> {
        self.value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| {
                v.get("out_order_no")
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
            })
            .or_else(|| {
                self.key
                    .as_deref()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .map(str::to_string)
            })
    }

    /// The original (topic, partition), from `catering-sync.source`.
    pub fn source_partition(&self) -> Option<i32> {
        let source = self.header(header::SOURCE)?;
        let mut parts = source.rsplitn(3, '/');
        let _offset = parts.next()?;
        parts.next()?.parse().ok()
    }

    fn matches(&self, f: &Filter) -> bool {
        let reason = self.header(header::REASON).and_then(Reason::parse);
        if !f.reasons.is_empty() && !reason.is_some_and(|r| f.reasons.contains(&r)) {
            return false;
        }
        let failed_at = self
            .header(header::FAILED_AT)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
        if f.since.is_some_and(|s| failed_at.is_none_or(|t| t < s))
            || f.until.is_some_and(|u| failed_at.is_none_or(|t| t >= u))
        {
            return false;
        }
        f.orders.is_empty() || self.out_order_no().is_some_and(|o| f.orders.contains(&o))
    }
}

/// Read every record of `topic` from the beginning to the end of each partition.
pub fn read_topic(
    cfg: &KafkaConfig,
    topic: &str,
    deadline: Duration,
) -> Result<Vec<DeadLetterRecord>, KafkaError> {
    read_topic_where(cfg, topic, deadline, |_| true)
}

/// As [`read_topic`], keeping only the records `keep` accepts (judged before anything is
/// copied, so reading a large topic for a few records holds only those). Assigned partitions,
/// no group membership and no commit: it never disturbs the service's group.
pub fn read_topic_where(
    cfg: &KafkaConfig,
    topic: &str,
    deadline: Duration,
    mut keep: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<Vec<DeadLetterRecord>, KafkaError> {
    let consumer: BaseConsumer<crate::state::ReadToEndContext> = kafka::restore_config(cfg)
        .set("group.id", format!("{}.replay", cfg.group_id))
        .create_with_context(crate::state::ReadToEndContext)?;
    let partitions =
        kafka::partition_count(&consumer, topic, Duration::from_secs(10))?.unwrap_or(0);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut at_end: BTreeMap<i32, bool> = (0..partitions).map(|p| (p, false)).collect();
    let started = Instant::now();
    let mut out = Vec::new();
    while at_end.values().any(|e| !e) {
        if started.elapsed() > deadline {
            return Err(KafkaError::Global(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p, true);
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(m)) => {
                at_end.insert(m.partition(), false);
                if !keep(&m) {
                    continue;
                }
                out.push(DeadLetterRecord {
                    timestamp_ms: m.timestamp().to_millis(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Dead letters read.
    pub read: usize,
    /// Dead letters that matched the filter.
    pub matched: usize,
    /// Re-published (0 in a dry run).
    pub sent: usize,
    /// Matched, by reason.
    pub by_reason: BTreeMap<String, usize>,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading the dead-letter topic failed (the cause follows in the error chain).
    #[error("reading the dead-letter topic")]
    Read(#[from] KafkaError),
    /// The reading task ended abnormally.
    #[error("reading the dead-letter topic")]
    Task(#[from] tokio::task::JoinError),
    /// The producer could not be made.
    #[error("creating the producer: {0}")]
    Producer(KafkaError),
    /// Re-publishing one dead letter failed (the ones before it are re-published).
    #[error("re-publishing {from}: {error}")]
    Publish {
        /// `DLQ_TOPIC/PARTITION/OFFSET`.
        from: String,
        /// The producer's error.
        error: KafkaError,
    },
    /// The report could not be written.
    #[error("writing the report")]
    Report(#[from] std::io::Error),
}

/// Replay dead letters of `cfg.dlq_topic` matching `filter` to `cfg.input_topic`.
pub async fn replay(
    cfg: &KafkaConfig,
    filter: &Filter,
    dry_run: bool,
    rate_per_second: f64,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let c = cfg.clone();
    let records =
        tokio::task::spawn_blocking(move || read_topic(&c, &c.dlq_topic, Duration::from_secs(600)))
            .await??;
    let producer: FutureProducer = kafka::producer_config(cfg)
        .create()
        .map_err(ReplayError::Producer)?;
    let mut summary = Summary {
        read: records.len(),
        ..Summary::default()
    };
    let interval = (rate_per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_per_second));
    for r in records.iter().filter(|r| r.matches(filter)) {
        summary.matched += 1;
        let reason = r.header(header::REASON).unwrap_or("?").to_string();
        *summary.by_reason.entry(reason.clone()).or_default() += 1;
        let from = format!("{}/{}/{}", cfg.dlq_topic, r.partition, r.offset);
        let order = r.out_order_no().unwrap_or_default();
        writeln!(
            out,
            "{} {from} reason={reason} order={order} failed-at={} source={}",
            if dry_run { "would replay" } else { "replay" },
            r.header(header::FAILED_AT).unwrap_or("?"),
            r.header(header::SOURCE).unwrap_or("?")
        )?;
        if dry_run {
            continue;
        }
        republish(&producer, &cfg.input_topic, r, &from).await?;
        summary.sent += 1;
        if let Some(i) = interval {
            tokio::time::sleep(i).await;
        }
    }
    report(out, &summary, &cfg.input_topic)?;
    Ok(summary)
}

/// Re-publish one dead letter's original record to `input_topic`, into its source partition,
/// without the `catering-sync.*` headers and with `catering-sync.replayed-from` = `from`.
async fn republish(
    producer: &FutureProducer,
    input_topic: &str,
    r: &DeadLetterRecord,
    from: &str,
) -> Result<(), ReplayError> {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("catering-sync."))
        .fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            })
        })
        .insert(Header {
            key: header::REPLAYED_FROM,
            value: Some(from.as_bytes()),
        });
    let mut record = FutureRecord::to(input_topic).headers(headers);
    if let Some(p) = r.source_partition() {
        record = record.partition(p);
    }
    if let Some(k) = &r.key {
        record = record.key(k.as_slice());
    }
    if let Some(v) = &r.value {
        record = record.payload(v.as_slice());
    }
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|_| ())
        .map_err(|(error, _)| ReplayError::Publish {
            from: from.to_string(),
            error,
        })
}

/// The closing line: read, matched (by reason), re-published.
fn report(out: &mut impl Write, summary: &Summary, input_topic: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{} dead letters read, {} matched{}, {} re-published to {}",
        summary.read,
        summary.matched,
        if summary.by_reason.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                summary
                    .by_reason
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        summary.sent,
        input_topic
    )
}
