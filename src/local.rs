//! The one local configuration: what the demo, the benchmarks and the tests run `run` with — a
//! local broker, the sandbox, generated test keys. Built as a value, a TOML table edited by key
//! ([`LocalConfig::set`]) or merged with an override table ([`LocalConfig::merge`]), never by
//! replacing text in a template; [`LocalConfig::to_toml`] is the file a child process reads.

use std::path::Path;

use toml::{Table, Value};

use crate::config::{Config, ConfigError};
use crate::keygen::{files, GeneratedKeys};

/// A local configuration under construction.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    table: Table,
}

impl LocalConfig {
    /// What every local run shares: `brokers`, WeChat Pay at `sandbox_url` with the keys
    /// written to `keys_dir`, a 6 s session (test brokers form groups in about half of it),
    /// replication 1, the operations server on a free port.
    pub fn new(brokers: &str, sandbox_url: &str, keys_dir: &Path, keys: &GeneratedKeys) -> Self {
        let file = |name: &str| Value::String(keys_dir.join(name).display().to_string());
        let mut key = Table::new();
        key.insert("key_id".into(), keys.wechatpay_key_id.clone().into());
        key.insert("public_key_file".into(), file(files::WECHATPAY_PUBLIC));
        Self {
            table: Table::new(),
        }
        .set("kafka.brokers", brokers)
        .set("kafka.session_timeout_ms", 6_000)
        .set("kafka.changelog_replication", 1)
        .set("wechatpay.base_url", sandbox_url)
        .set("wechatpay.mchid", keys.mchid.as_str())
        .set("wechatpay.merchant_serial", keys.merchant_serial.as_str())
        .set("wechatpay.private_key_file", file(files::MERCHANT_KEY))
        .set("wechatpay.verification_keys", vec![Value::Table(key)])
        .set("http.listen", "127.0.0.1:0")
    }

    /// Short bounds for runs of seconds, shared by the demo and the tests: 500 ms heartbeats,
    /// a 5 s drain, commits every 200 ms, a 10 s shutdown.
    pub fn quick(self) -> Self {
        self.property("consumer", "heartbeat.interval.ms", "500")
            .set("pipeline.drain_timeout_ms", 5_000)
            .set("pipeline.commit_interval_ms", 200)
            .set("pipeline.shutdown_timeout_ms", 10_000)
    }

    /// The group and its three topics.
    pub fn names(self, group: &str, input: &str, changelog: &str, dlq: &str) -> Self {
        self.set("kafka.group_id", group)
            .set("kafka.input_topic", input)
            .set("kafka.changelog_topic", changelog)
            .set("kafka.dlq_topic", dlq)
    }

    /// Set `key`, a dotted path (`retry.max_attempts`); the tables on the way are made.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        let mut parts: Vec<&str> = key.split('.').collect();
        let leaf = parts.pop().expect("a non-empty key");
        let mut table = &mut self.table;
        for part in parts {
            table = table
                .entry(part)
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{key}: {part} is not a table"));
        }
        table.insert(leaf.into(), value.into());
        self
    }

    /// A librdkafka property of `[kafka.<table>]` (`common`, `consumer`, `producer`); its name
    /// has dots, so it is not a dotted path.
    pub fn property(mut self, table: &str, name: &str, value: &str) -> Self {
        let kafka = self
            .table
            .entry("kafka")
            .or_insert_with(|| Value::Table(Table::new()));
        kafka
            .as_table_mut()
            .expect("kafka is a table")
            .entry(table)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("kafka.{table} is not a table"))
            .insert(name.into(), value.into());
        self
    }

    /// Merge an override table given as TOML text: its keys replace or join this one's, tables
    /// merged key by key (`"[retry]\nmax_attempts = 4"` changes one key of `[retry]`); an
    /// array (`[[wechatpay.verification_keys]]`) replaces the array, it is not appended to.
    pub fn merge(mut self, overrides: &str) -> Self {
        let extra: Table = overrides
            .parse()
            .unwrap_or_else(|e| panic!("override table {overrides:?}: {e}"));
        merge(&mut self.table, extra);
        self
    }

    /// The configuration as a file.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.table).expect("a table always serialises")
    }

    /// The configuration, validated as `run` would (without the process environment).
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_toml(&self.to_toml(), std::iter::empty())
    }
}

fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(mine)), Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_property_and_merge_edit_by_key_and_the_result_validates() {
        let keys = crate::keygen::generate("1900000001", &mut rand::thread_rng()).unwrap();
        let local = LocalConfig::new(
            "127.0.0.1:9092",
            "http://127.0.0.1:8080",
            Path::new("/keys"),
            &keys,
        )
        .names("g", "in", "state", "dlq")
        .set("retry.max_attempts", 10)
        .set("retry.breaker_threshold", 3)
        .property("consumer", "heartbeat.interval.ms", "500")
        .merge("[retry]\nmax_attempts = 4\n[state]\nsweep_interval_secs = 1");
        let c = local.config().unwrap();
        assert_eq!(c.retry.max_attempts, 4, "merged over the set value");
        assert_eq!(c.retry.breaker_threshold, 3, "the rest of [retry] kept");
        assert_eq!(
            c.state.sweep_interval_secs,
            std::time::Duration::from_secs(1)
        );
        assert_eq!(c.kafka.group_id, "g");
        assert_eq!(
            c.kafka
                .consumer
                .0
                .get("heartbeat.interval.ms")
                .map(String::as_str),
            Some("500")
        );
        assert_eq!(
            c.wechatpay.private_key_file,
            Path::new("/keys").join(files::MERCHANT_KEY)
        );
    }
}
