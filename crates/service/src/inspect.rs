//! `catering-sync order show`: what support needs when a merchant asks "did order X reach WeChat
//! Pay?". Reads the order's latest changelog record and every dead letter of the order, and the
//! consumer group's committed offset of the order's input partition; prints the snapshot with
//! `login_token` and the openids redacted, its status, the events applied, whether the latest
//! body was acknowledged, the last acknowledged posts (status, time, Request-ID: the record's
//! `catering-sync.deliveries` header) and each dead letter with its reason.
//!
//! Read-only: partitions are assigned (no group membership, so no rebalance of the running
//! deployment), nothing is committed and nothing is written. It reads the changelog and the
//! dead-letter topic to their ends as the broker reports them, so a record written while it
//! reads may be missed: run it again.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value;

use crate::config::KafkaConfig;
use crate::dead_letter::header;
use crate::pipeline::kafka;
use crate::replay::{read_topic_where, DeadLetterRecord};
use crate::state::{EPOCH_HEADER, FENCE_KEY};

/// Fields of a snapshot never printed: the guest's session token and identities.
const REDACTED: [&str; 3] = ["login_token", "openid", "sub_openid"];

/// What is known of one order.
#[derive(Debug, Clone, Serialize)]
pub struct OrderReport {
    /// The order asked about.
    pub out_order_no: String,
    /// One sentence for support: delivered, in progress, dead-lettered, expired or never seen.
    pub verdict: String,
    /// The order's latest changelog record, when it has one.
    pub state: Option<StateSeen>,
    /// Every dead letter of the order, oldest first.
    pub dead_letters: Vec<DeadLetterSeen>,
}

/// The order's latest changelog record.
#[derive(Debug, Clone, Serialize)]
pub struct StateSeen {
    /// Changelog partition (the order's input partition: the topics are co-partitioned).
    pub partition: i32,
    /// Changelog offset of the record.
    pub offset: i64,
    /// The owner epoch of the member that wrote it (0: a release without epochs).
    pub epoch: u64,
    /// Records of the order passed over, as a restore passes them over: written by a member
    /// after a newer owner had fenced the partition (a zombie's writes).
    pub fenced_records: u64,
    /// When it was written (RFC 3339), when the broker gives a timestamp.
    pub written_at: Option<String>,
    /// `acknowledged` (the body it describes was acknowledged: its digest is in the record),
    /// `write_ahead` (written before a post whose answer it does not know), `expired` (a
    /// tombstone: the order passed its retention and was forgotten).
    pub kind: &'static str,
    /// The snapshot's status.
    pub status: Option<String>,
    /// The merged snapshot, `login_token` and openids redacted.
    pub snapshot: Option<Value>,
    /// How many event ids the record remembers (the most recent ones).
    pub applied_events: usize,
    /// The greatest `seq` applied.
    pub last_seq: Option<u64>,
    /// SHA-256 of the last body WeChat Pay acknowledged with a verified 204.
    pub acked_digest: Option<String>,
    /// When a `PAY_SUCCESS` body was acknowledged (RFC 3339).
    pub pay_success_acknowledged_at: Option<String>,
    /// The consumer group's committed offset of the input partition: every input record below
    /// it is done (acknowledged, dead-lettered or ignored).
    pub committed_input_offset: Option<i64>,
    /// The last acknowledged posts the record carries, oldest first (at most 4). A post
    /// acknowledged after the record was written is not among them.
    pub deliveries: Vec<DeliverySeen>,
}

/// One acknowledged post.
#[derive(Debug, Clone, Serialize)]
pub struct DeliverySeen {
    /// The status the body reported.
    pub status: String,
    /// When the verified 204 arrived (RFC 3339).
    pub at: Option<String>,
    /// WeChat Pay's `Request-ID` of that 204.
    pub request_id: Option<String>,
}

/// One dead letter of the order.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterSeen {
    /// `DLQ_TOPIC/PARTITION/OFFSET`.
    pub at: String,
    /// `catering-sync.reason`.
    pub reason: Option<String>,
    /// `catering-sync.error`.
    pub error: Option<String>,
    /// `catering-sync.source`: the original record.
    pub source: Option<String>,
    /// `catering-sync.failed-at`.
    pub failed_at: Option<String>,
    /// `catering-sync.attempts`.
    pub attempts: Option<String>,
    /// `catering-sync.http-status`.
    pub http_status: Option<String>,
    /// `catering-sync.request-id` of WeChat Pay's last answer.
    pub request_id: Option<String>,
}

/// Why `order show` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Reading a topic failed.
    #[error("reading {topic}: {error}")]
    Read {
        /// The topic.
        topic: String,
        /// The cause.
        error: rdkafka::error::KafkaError,
    },
    /// The reading task ended abnormally.
    #[error("reading the topics: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Find out what is known of `out_order_no` (blocking reads on blocking threads).
pub async fn show(cfg: &KafkaConfig, out_order_no: &str) -> Result<OrderReport, InspectError> {
    let (c, no) = (cfg.clone(), out_order_no.to_string());
    let state = tokio::task::spawn_blocking(move || latest_state(&c, &no)).await??;
    let (c, no) = (cfg.clone(), out_order_no.to_string());
    let dead = tokio::task::spawn_blocking(move || dead_letters(&c, &no)).await??;
    let state = match state {
        None => None,
        Some(newest) => {
            let (c, p) = (cfg.clone(), newest.record.partition);
            let committed = tokio::task::spawn_blocking(move || committed_offset(&c, p)).await?;
            Some(seen(&newest, committed))
        }
    };
    Ok(OrderReport {
        out_order_no: out_order_no.to_string(),
        verdict: verdict(state.as_ref(), &dead),
        state,
        dead_letters: dead,
    })
}

const READ_DEADLINE: Duration = Duration::from_secs(600);

fn read_error(topic: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> InspectError + '_ {
    move |error| InspectError::Read {
        topic: topic.to_string(),
        error,
    }
}

/// The order's latest record in the changelog (the order is its key), tombstones included, as
/// a restore would take it: the fence records are read too, so a zombie's write is passed over.
fn latest_state(cfg: &KafkaConfig, no: &str) -> Result<Option<Newest>, InspectError> {
    let topic = &cfg.changelog_topic;
    let records = read_topic_where(cfg, topic, READ_DEADLINE, |m| {
        m.key() == Some(no.as_bytes()) || m.key() == Some(FENCE_KEY.as_bytes())
    })
    .map_err(read_error(topic))?;
    Ok(newest_unfenced(records, no))
}

/// The order's newest record a restore keeps, with its writer's epoch and how many newer ones
/// it passed over.
#[derive(Debug)]
struct Newest {
    record: DeadLetterRecord,
    epoch: u64,
    fenced: u64,
}

/// The restore's rule (see [`crate::state::restore`]): in log order, a record whose epoch is
/// below the highest epoch read before it was written by an owner fenced out already (a
/// zombie's write): passed over. Records of a release without epochs count as epoch 0.
fn newest_unfenced(mut records: Vec<DeadLetterRecord>, no: &str) -> Option<Newest> {
    let epoch_of = |r: &DeadLetterRecord| {
        r.header(EPOCH_HEADER)
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // The order lives in one partition; read it in offset order.
    records.sort_by_key(|r| (r.partition, r.offset));
    let partition = records
        .iter()
        .find(|r| r.key.as_deref() == Some(no.as_bytes()))?
        .partition;
    let (mut max_epoch, mut fenced, mut newest) = (0, 0, None);
    for r in records.into_iter().filter(|r| r.partition == partition) {
        let epoch = epoch_of(&r);
        if r.key.as_deref() == Some(FENCE_KEY.as_bytes()) {
            max_epoch = max_epoch.max(epoch);
        } else if epoch < max_epoch {
            fenced += 1;
        } else {
            max_epoch = epoch;
            newest = Some((r, epoch));
        }
    }
    newest.map(|(record, epoch)| Newest {
        record,
        epoch,
        fenced,
    })
}

/// Every dead letter whose key or event names the order.
fn dead_letters(cfg: &KafkaConfig, no: &str) -> Result<Vec<DeadLetterSeen>, InspectError> {
    let topic = &cfg.dlq_topic;
    let records = read_topic_where(cfg, topic, READ_DEADLINE, |m| {
        m.key() == Some(no.as_bytes())
            || m.payload().is_some_and(|v| {
                // A record whose key is not the order (or that has none) but whose event names it.
                memchr_contains(v, no.as_bytes())
            })
    })
    .map_err(read_error(topic))?;
    let mut out: Vec<DeadLetterSeen> = records
        .iter()
        .filter(|r| r.out_order_no().as_deref() == Some(no))
        .map(|r| {
            let h = |name: &str| r.header(name).map(str::to_string);
            DeadLetterSeen {
                at: format!("{topic}/{}/{}", r.partition, r.offset),
                reason: h(header::REASON),
                error: h(header::ERROR),
                source: h(header::SOURCE),
                failed_at: h(header::FAILED_AT),
                attempts: h(header::ATTEMPTS),
                http_status: h(header::HTTP_STATUS),
                request_id: h(header::REQUEST_ID),
            }
        })
        .collect();
    out.sort_by(|a, b| a.failed_at.cmp(&b.failed_at));
    Ok(out)
}

fn memchr_contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The group's committed offset of input partition `partition` (an OffsetFetch: no join).
fn committed_offset(cfg: &KafkaConfig, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = kafka::restore_config(cfg)
        .set("group.id", &cfg.group_id)
        .create()
        .ok()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&cfg.input_topic, partition);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .ok()?;
    let offset = committed.elements().first()?.offset();
    match offset {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The record as support reads it.
fn seen(newest: &Newest, committed_input_offset: Option<i64>) -> StateSeen {
    let r = &newest.record;
    let record: Option<Value> = r
        .value
        .as_deref()
        .and_then(|v| serde_json::from_slice(v).ok());
    let field = |k: &str| {
        record
            .as_ref()
            .and_then(|v| v.get(k))
            .filter(|v| !v.is_null())
    };
    let acked_digest = field("acked_digest")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = match (&r.value, &acked_digest) {
        (None, _) => "expired",
        (Some(_), Some(_)) => "acknowledged",
        (Some(_), None) => "write_ahead",
    };
    let mut snapshot = field("snapshot").cloned();
    if let Some(s) = &mut snapshot {
        redact(s);
    }
    StateSeen {
        partition: r.partition,
        offset: r.offset,
        epoch: newest.epoch,
        fenced_records: newest.fenced,
        written_at: r.timestamp_ms.filter(|t| *t > 0).and_then(rfc3339_ms),
        kind,
        status: snapshot
            .as_ref()
            .and_then(|s| s.get("status"))
            .and_then(Value::as_str)
            .map(str::to_string),
        snapshot,
        applied_events: field("applied_event_ids")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        last_seq: field("last_seq").and_then(Value::as_u64),
        acked_digest,
        pay_success_acknowledged_at: field("final_acked_at_ms")
            .and_then(Value::as_i64)
            .and_then(rfc3339_ms),
        committed_input_offset,
        deliveries: r
            .header(crate::state::DELIVERIES_HEADER)
            .map(|h| crate::snapshot::Deliveries::from_header(h.as_bytes()).list())
            .unwrap_or_default()
            .into_iter()
            .map(|d| DeliverySeen {
                status: d.status.as_str().to_string(),
                at: i64::try_from(d.at_ms).ok().and_then(rfc3339_ms),
                request_id: d.request_id.map(String::from),
            })
            .collect(),
    }
}

/// Replace every redacted field, at any depth, by `"[redacted]"`.
fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if REDACTED.contains(&k.as_str()) {
                    *x = Value::String("[redacted]".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The one sentence support reads first.
fn verdict(state: Option<&StateSeen>, dead: &[DeadLetterSeen]) -> String {
    let dl = match dead.len() {
        0 => String::new(),
        n => format!(
            "; {n} dead letter(s), the last for {}",
            dead[n - 1].reason.as_deref().unwrap_or("?")
        ),
    };
    match state {
        None if dead.is_empty() => "never seen: no state and no dead letter for this order (not yet consumed, never published, or expired and compacted away)".into(),
        None => format!("not tracked: no state for this order{dl}"),
        Some(s) if s.kind == "expired" => format!("expired: the order passed its retention and was forgotten{dl}"),
        Some(s) => {
            let status = s.status.as_deref().unwrap_or("no status yet");
            match (s.kind, &s.pay_success_acknowledged_at) {
                (_, Some(at)) => format!("delivered: PAY_SUCCESS acknowledged by WeChat Pay at {at}{dl}"),
                ("acknowledged", None) => format!("delivered: {status} acknowledged by WeChat Pay (verified 204){dl}"),
                _ => {
                    let last = s.deliveries.last().map_or(String::new(), |d| {
                        format!(
                            "; the last post recorded as acknowledged: {} at {}",
                            d.status,
                            d.at.as_deref().unwrap_or("?")
                        )
                    });
                    format!("{status}: the latest state was written before its post; an acknowledgement of a status other than PAY_SUCCESS is recorded with the order's next change, so check the committed input offset{last}{dl}")
                }
            }
        }
    }
}

impl std::fmt::Display for OrderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "order {}: {}", self.out_order_no, self.verdict)?;
        if let Some(s) = &self.state {
            writeln!(
                f,
                "  changelog: partition {} offset {} ({}), written {} by owner epoch {}",
                s.partition,
                s.offset,
                s.kind,
                s.written_at.as_deref().unwrap_or("?"),
                s.epoch
            )?;
            if s.fenced_records > 0 {
                writeln!(
                    f,
                    "  passed over: {} record(s) of the order written after a newer owner's fence (a previous owner's writes; a restore ignores them too)",
                    s.fenced_records
                )?;
            }
            writeln!(f, "  status: {}", s.status.as_deref().unwrap_or("none"))?;
            writeln!(
                f,
                "  events applied: {} remembered, last seq {}",
                s.applied_events,
                s.last_seq.map_or("none".into(), |q| q.to_string())
            )?;
            writeln!(
                f,
                "  last acknowledged body: {}",
                s.acked_digest.as_deref().unwrap_or("not recorded")
            )?;
            if let Some(at) = &s.pay_success_acknowledged_at {
                writeln!(f, "  PAY_SUCCESS acknowledged at: {at}")?;
            }
            writeln!(
                f,
                "  group's committed offset of input partition {}: {}",
                s.partition,
                s.committed_input_offset
                    .map_or("none".into(), |o| o.to_string())
            )?;
            if s.deliveries.is_empty() {
                writeln!(f, "  acknowledged posts: none recorded")?;
            }
            for d in &s.deliveries {
                writeln!(
                    f,
                    "  acknowledged post: {} at {} (Request-ID {})",
                    d.status,
                    d.at.as_deref().unwrap_or("?"),
                    d.request_id.as_deref().unwrap_or("-")
                )?;
            }
            if let Some(snapshot) = &s.snapshot {
                writeln!(f, "  snapshot (login_token and openids redacted):")?;
                let text = serde_json::to_string_pretty(snapshot).unwrap_or_default();
                for line in text.lines() {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        if self.dead_letters.is_empty() {
            writeln!(f, "  dead letters: none")?;
        }
        for d in &self.dead_letters {
            writeln!(
                f,
                "  dead letter {}: reason {} at {} (source {}, attempts {}, HTTP {}, Request-ID {}): {}",
                d.at,
                d.reason.as_deref().unwrap_or("?"),
                d.failed_at.as_deref().unwrap_or("?"),
                d.source.as_deref().unwrap_or("?"),
                d.attempts.as_deref().unwrap_or("-"),
                d.http_status.as_deref().unwrap_or("-"),
                d.request_id.as_deref().unwrap_or("-"),
                d.error.as_deref().unwrap_or("")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, key: &str, epoch: Option<u64>, value: &str) -> DeadLetterRecord {
        DeadLetterRecord {
            partition: 3,
            offset,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: epoch
                .map(|e| vec![(EPOCH_HEADER.to_string(), e.to_string().into_bytes())])
                .unwrap_or_default(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_zombies_write_after_a_newer_fence_is_not_the_order_shown() {
        let records = vec![
            record(0, "A", None, "from a release without epochs"),
            record(1, FENCE_KEY, Some(5), "fence"),
            record(2, "A", Some(5), "the owner's"),
            record(3, FENCE_KEY, Some(9), "a newer owner's fence"),
            // The previous owner, not yet aware, writes after the fence: passed over.
            record(4, "A", Some(5), "a zombie's"),
        ];
        let newest = newest_unfenced(records.clone(), "A").unwrap();
        assert_eq!(newest.record.offset, 2);
        assert_eq!((newest.epoch, newest.fenced), (5, 1));
        // The newer owner writes: that one is shown.
        let mut more = records;
        more.push(record(5, "A", Some(9), "the newer owner's"));
        let newest = newest_unfenced(more.clone(), "A").unwrap();
        assert_eq!(
            (newest.record.offset, newest.epoch, newest.fenced),
            (5, 9, 1)
        );
        // Unordered input is read in log order; an order never written is not there.
        more.reverse();
        assert_eq!(newest_unfenced(more.clone(), "A").unwrap().record.offset, 5);
        assert!(newest_unfenced(more, "B").is_none());
        // Records without epochs only (a previous release): the newest.
        let old = vec![record(0, "A", None, "1"), record(1, "A", None, "2")];
        let newest = newest_unfenced(old, "A").unwrap();
        assert_eq!((newest.record.offset, newest.epoch), (1, 0));
    }

    #[test]
    fn redaction_reaches_every_depth() {
        let mut v = serde_json::json!({"login_token": "t", "openid": "o", "a": [{"sub_openid": "s", "keep": 1}]});
        redact(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"login_token": "[redacted]", "openid": "[redacted]", "a": [{"sub_openid": "[redacted]", "keep": 1}]})
        );
    }
}
