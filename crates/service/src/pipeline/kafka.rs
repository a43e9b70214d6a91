//! Kafka clients: configuration (offsets stored and committed explicitly, never auto-stored),
//! topic checks at start-up (the changelog co-partitioned with the input; created when missing),
//! and owned records.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use crate::config::KafkaConfig;

/// A record as the pipeline holds it: owned, with its coordinates.
#[derive(Debug, Clone)]
pub struct InRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl InRecord {
    /// Copy a borrowed message out of librdkafka's buffers.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

fn base(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    // A name the broker's logs, quotas and ACL audit show (librdkafka's default is "rdkafka");
    // `[kafka.common] "client.id"` overrides it.
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", "catering-sync");
    for (k, v) in &cfg.common.0 {
        c.set(k, v);
    }
    c
}

/// The group consumer: explicit offset storage and commits only.
pub fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base(cfg);
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", cfg.assignor.as_str())
        .set(
            "session.timeout.ms",
            cfg.session_timeout_ms.as_millis().to_string(),
        )
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000");
    for (k, v) in &cfg.consumer.0 {
        c.set(k, v);
    }
    c
}

/// The producer of dead letters and changelog records: acks from every in-sync replica,
/// idempotent (ordered per partition, no duplicates from internal retries).
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base(cfg);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in &cfg.producer.0 {
        c.set(k, v);
    }
    c
}

/// The producer of one partition's changelog records and dead letters in `run`: as
/// [`producer_config`], with its timeouts derived from the drain bound. A write started right
/// after the last possible answer of a request (`request_timeout` into the drain) is answered or
/// failed before the bound, so no write of a revoked partition can land after it.
///
/// Its `message.max.bytes` is sized from `max_event_bytes` (librdkafka's default, 1,000,000, is
/// below the default 1 MiB event limit): a dead letter carries the whole original record plus
/// its headers, so every record the service accepts as an event — and any it dead-letters as too
/// large, truncated to fit (`catering-sync.truncated`) — can be written.
pub fn pipeline_producer_config(
    cfg: &KafkaConfig,
    drain_timeout: Duration,
    request_timeout: Duration,
    max_event_bytes: usize,
) -> ClientConfig {
    let mut c = producer_config(cfg);
    let configured = |k: &str| cfg.producer.0.contains_key(k) || cfg.common.0.contains_key(k);
    if !configured("message.max.bytes") {
        c.set(
            "message.max.bytes",
            (max_event_bytes + DEAD_LETTER_HEADROOM).to_string(),
        );
    }
    let window = drain_timeout.saturating_sub(request_timeout);
    let timeout = window
        .saturating_sub(Duration::from_millis(250))
        .max(Duration::from_millis(500))
        .as_millis()
        .to_string();
    if !configured("message.timeout.ms") && !configured("delivery.timeout.ms") {
        c.set("message.timeout.ms", &timeout);
    }
    if !configured("request.timeout.ms") {
        c.set("request.timeout.ms", &timeout);
    }
    c
}

/// Room above `max_event_bytes` in a produced record for the dead-letter headers (the error
/// detail names every violated rule) and the record's framing.
pub const DEAD_LETTER_HEADROOM: usize = 64 * 1024;

/// A group-less reader of one changelog partition, to its end.
pub fn restore_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base(cfg);
    c.set("group.id", format!("{}.restore", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // Restore reads one partition from the start as fast as it can: big fetches (fewer round
        // trips), and a short wait on the final empty fetch that reveals the end.
        .set("max.partition.fetch.bytes", "16777216")
        .set("fetch.max.bytes", "67108864")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.error.backoff.ms", "20");
    for (k, v) in &cfg.consumer.0 {
        if k != "partition.assignment.strategy" && k != "group.instance.id" {
            c.set(k, v);
        }
    }
    c
}

/// Why start-up could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The broker did not answer.
    #[error("cannot reach Kafka at {brokers}: {source}")]
    Unreachable {
        /// `kafka.brokers`.
        brokers: String,
        /// The cause.
        source: rdkafka::error::KafkaError,
    },
    /// The input topic does not exist.
    #[error("input topic {0:?} does not exist (kafka.input_topic)")]
    NoInput(String),
    /// The changelog is not co-partitioned with the input.
    #[error("changelog topic {changelog:?} has {changelog_partitions} partitions but input topic {input:?} has {input_partitions}: they must be co-partitioned (kafka.changelog_topic); recreate the changelog with {input_partitions} partitions")]
    NotCoPartitioned {
        /// Input topic.
        input: String,
        /// Its partitions.
        input_partitions: i32,
        /// Changelog topic.
        changelog: String,
        /// Its partitions.
        changelog_partitions: i32,
    },
    /// The changelog is missing and may not be created.
    #[error("changelog topic {0:?} does not exist and kafka.create_changelog is false")]
    NoChangelog(String),
    /// Creating a topic failed.
    #[error("cannot create topic {topic:?}: {reason}")]
    Create {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl TopicError {
    /// Whether this is the operator's to fix in configuration (exit 2) rather than a runtime failure.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, Self::Unreachable { .. })
    }
}

/// Partitions of `topic`, `None` when it does not exist.
pub fn partition_count<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<i32>, rdkafka::error::KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

/// Check the input topic, create the changelog (compacted) and dead-letter topics when missing,
/// and require the changelog to be co-partitioned with the input. Returns the partition count.
pub async fn ensure_topics(cfg: &KafkaConfig) -> Result<i32, TopicError> {
    let unreachable = |source| TopicError::Unreachable {
        brokers: cfg.brokers.clone(),
        source,
    };
    let probe: BaseConsumer = base(cfg).create().map_err(unreachable)?;
    let timeout = Duration::from_secs(10);
    let count = |t: &str| partition_count(&probe, t, timeout);
    let input = count(&cfg.input_topic)
        .map_err(unreachable)?
        .ok_or_else(|| TopicError::NoInput(cfg.input_topic.clone()))?;
    let admin: AdminClient<DefaultClientContext> = base(cfg).create().map_err(unreachable)?;
    let replication = cfg.changelog_replication.max(1).to_string();
    match count(&cfg.changelog_topic).map_err(unreachable)? {
        Some(n) if n != input => {
            return Err(TopicError::NotCoPartitioned {
                input: cfg.input_topic.clone(),
                input_partitions: input,
                changelog: cfg.changelog_topic.clone(),
                changelog_partitions: n,
            })
        }
        Some(_) => {}
        None if !cfg.create_changelog => {
            return Err(TopicError::NoChangelog(cfg.changelog_topic.clone()))
        }
        None => {
            let topic = NewTopic::new(
                &cfg.changelog_topic,
                input,
                TopicReplication::Fixed(cfg.changelog_replication.max(1)),
            )
            .set("cleanup.policy", "compact")
            // A zombie's late record is repaired at the next restore (state/restore.rs); until
            // then compaction must not drop the good record under it.
            .set("min.compaction.lag.ms", "86400000")
            .set(
                "min.insync.replicas",
                if replication == "1" { "1" } else { "2" },
            );
            create(&admin, &topic).await?;
        }
    }
    if count(&cfg.dlq_topic).map_err(unreachable)?.is_none() {
        let topic = NewTopic::new(
            &cfg.dlq_topic,
            input,
            TopicReplication::Fixed(cfg.changelog_replication.max(1)),
        );
        create(&admin, &topic).await?;
    }
    Ok(input)
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: &NewTopic<'_>,
) -> Result<(), TopicError> {
    let err = |reason: String| TopicError::Create {
        topic: topic.name.to_string(),
        reason,
    };
    let results = admin
        .create_topics([topic], &AdminOptions::new())
        .await
        .map_err(|e| err(e.to_string()))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(err(code.to_string())),
        }
    }
    tracing::info!(
        topic = topic.name,
        partitions = topic.num_partitions,
        "created topic"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka is built with TLS (vendored OpenSSL): SSL and SASL/SCRAM over SSL configure.
    #[test]
    fn tls_and_sasl_scram_are_built_in() {
        for (protocol, mechanism) in [
            ("SSL", None),
            ("SASL_SSL", Some("SCRAM-SHA-512")),
            ("SASL_SSL", Some("PLAIN")),
        ] {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", "127.0.0.1:1")
                .set("security.protocol", protocol);
            if let Some(m) = mechanism {
                c.set("sasl.mechanisms", m)
                    .set("sasl.username", "u")
                    .set("sasl.password", "p");
            }
            let created: Result<BaseConsumer, _> = c.create();
            assert!(
                created.is_ok(),
                "{protocol} {mechanism:?}: {:?}",
                created.err()
            );
        }
    }

    #[test]
    fn offsets_are_never_auto_stored_or_auto_committed() {
        let cfg: crate::config::Config = crate::config::Config::from_toml(
            include_str!("../../../../deploy/config/catering-sync.example.toml"),
            [(
                "CATERING_SYNC__KAFKA__CONSUMER__FETCH_MAX_BYTES".to_string(),
                "1000".to_string(),
            )]
            .into_iter(),
        )
        .unwrap();
        let c = consumer_config(&cfg.kafka);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(
            c.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(c.get("fetch.max.bytes"), Some("1000"));
        let p = producer_config(&cfg.kafka);
        assert_eq!(
            (p.get("acks"), p.get("enable.idempotence")),
            (Some("all"), Some("true"))
        );
    }
}
