//! Configuration: one TOML file plus environment overrides, validated once before anything
//! connects; every error names the key. Secrets never show in `Debug`.
//!
//! Environment overrides: `CATERING_SYNC__SECTION__KEY=value`, e.g.
//! `CATERING_SYNC__WECHATPAY__MCHID=1900000001`, `CATERING_SYNC__KAFKA__BROKERS=kafka:9092`.
//! Inside the librdkafka pass-through tables (`kafka.common`, `kafka.consumer`,
//! `kafka.producer`) underscores become dots: `CATERING_SYNC__KAFKA__COMMON__SASL_PASSWORD` sets
//! `sasl.password`. Values are read as TOML scalars (numbers, booleans) where the key expects one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::snapshot::Defaults;

/// Environment variable prefix.
pub const ENV_PREFIX: &str = "CATERING_SYNC__";

/// The least time the drain bound leaves, after a request's timeout, for its changelog write.
pub const MIN_WRITE_WINDOW_MS: u64 = 1_000;

/// A configuration problem, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `wechatpay.private_key_file` (empty for the file as a whole).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "configuration: {}", self.problem)
        } else {
            write!(f, "configuration key `{}`: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// librdkafka properties passed through as given; values of secret-looking keys are redacted
/// in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(pub BTreeMap<String, String>);

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            let secret = ["password", "secret", "key", "token"]
                .iter()
                .any(|s| k.contains(s));
            m.entry(k, if secret { &"<redacted>" } else { v });
        }
        m.finish()
    }
}

/// Partition assignment strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignor {
    /// Incremental rebalancing (default).
    CooperativeSticky,
    /// Eager range assignment.
    Range,
    /// Eager round-robin assignment.
    Roundrobin,
}

impl Assignor {
    /// librdkafka's `partition.assignment.strategy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CooperativeSticky => "cooperative-sticky",
            Self::Range => "range",
            Self::Roundrobin => "roundrobin",
        }
    }
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group id.
    #[serde(default = "d::group_id")]
    pub group_id: String,
    /// Input topic of order events.
    #[serde(default = "d::input_topic")]
    pub input_topic: String,
    /// Compacted changelog topic of order state, co-partitioned with the input.
    #[serde(default = "d::changelog_topic")]
    pub changelog_topic: String,
    /// Dead-letter topic.
    #[serde(default = "d::dlq_topic")]
    pub dlq_topic: String,
    /// Partition assignment strategy.
    #[serde(default = "d::assignor")]
    pub assignor: Assignor,
    /// `session.timeout.ms`.
    #[serde(default = "d::session_timeout_ms", deserialize_with = "millis")]
    pub session_timeout_ms: Duration,
    /// Create the changelog topic (compacted, same partition count as the input) when missing.
    #[serde(default = "d::yes")]
    pub create_changelog: bool,
    /// Replication factor when creating the changelog topic.
    #[serde(default = "d::replication")]
    pub changelog_replication: i32,
    /// Properties for every client (security: `security.protocol`, `sasl.*`, `ssl.*`).
    #[serde(default)]
    pub common: KafkaProperties,
    /// Extra consumer properties.
    #[serde(default)]
    pub consumer: KafkaProperties,
    /// Extra producer properties (DLQ and changelog writes).
    #[serde(default)]
    pub producer: KafkaProperties,
}

/// One WeChat Pay verification key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationKeyConfig {
    /// `PUB_KEY_ID_…` (with `public_key_file`).
    pub key_id: Option<String>,
    /// WeChat Pay public key PEM.
    pub public_key_file: Option<PathBuf>,
    /// Platform certificate PEM (its serial is the key id).
    pub certificate_file: Option<PathBuf>,
}

/// `[[wechatpay.merchants]]`: a further signing merchant (the top-level one is the first).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    /// Its merchant id: orders whose `sp_mchid` is it are signed by it.
    pub mchid: String,
    /// Its API certificate serial.
    pub merchant_serial: String,
    /// Its `apiclient_key.pem`.
    pub private_key_file: PathBuf,
    /// WeChat Pay's keys for it (empty: the top-level ones).
    #[serde(default)]
    pub verification_keys: Vec<VerificationKeyConfig>,
    /// As the top-level `wechatpay_serial`, for it.
    #[serde(default)]
    pub wechatpay_serial: Option<String>,
    /// Its APIv3 key (platform-certificate mode).
    #[serde(default)]
    pub apiv3_key_file: Option<PathBuf>,
    /// Its own send-rate limit (0 = none until a 429).
    #[serde(default)]
    pub max_rate_per_second: f64,
    /// Channel mode: the `channel_id`s whose orders it signs.
    #[serde(default)]
    pub channel_ids: Vec<String>,
}

/// `[wechatpay]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatPayConfig {
    /// `https://api.mch.weixin.qq.com` (default), the backup host, or a sandbox.
    #[serde(default = "d::base_url")]
    pub base_url: String,
    /// The signing merchant id.
    pub mchid: String,
    /// The merchant API certificate serial.
    pub merchant_serial: String,
    /// `apiclient_key.pem`.
    pub private_key_file: PathBuf,
    /// WeChat Pay's keys, several during a migration (none in platform-certificate mode, which
    /// downloads them).
    #[serde(default)]
    pub verification_keys: Vec<VerificationKeyConfig>,
    /// Platform-certificate mode: the merchant's APIv3 key (a file of its 32 characters; a
    /// secret, never logged). With it the platform certificates are downloaded from
    /// `GET /v3/certificates` at start-up and every `certificate_refresh_interval_ms`.
    #[serde(default)]
    pub apiv3_key_file: Option<PathBuf>,
    /// How often the platform certificates are downloaded (WeChat Pay: at least every 12 h).
    #[serde(
        default = "d::certificate_refresh_interval_ms",
        deserialize_with = "millis"
    )]
    pub certificate_refresh_interval_ms: Duration,
    /// Opt-in failover (e.g. `https://api2.mch.weixin.qq.com`): a request that cannot reach
    /// `base_url` (connect, DNS, TLS: never an HTTP answer) is sent here, and later ones too
    /// until a probe of `base_url` connects again.
    #[serde(default)]
    pub backup_base_url: Option<String>,
    /// How often, while on the backup, `base_url` is tried again.
    #[serde(default = "d::backup_probe_interval_ms", deserialize_with = "millis")]
    pub backup_probe_interval_ms: Duration,
    /// Channel mode with several merchants: the `channel_id`s the top-level merchant signs.
    #[serde(default)]
    pub channel_ids: Vec<String>,
    /// Further signing merchants; with any, an order is signed by the merchant it names
    /// (`sp_mchid`, or `channel_id` through `channel_ids`) and one naming none is dead-lettered.
    #[serde(default)]
    pub merchants: Vec<MerchantConfig>,
    /// Sent as `Wechatpay-Serial`: by default the one configured `PUB_KEY_ID_…` key (none
    /// without one); `""` sends none; any other value must be a configured verification key.
    #[serde(default)]
    pub wechatpay_serial: Option<String>,
    /// Whole-request timeout.
    #[serde(default = "d::request_timeout_ms", deserialize_with = "millis")]
    pub request_timeout_ms: Duration,
    /// Connect timeout.
    #[serde(default = "d::connect_timeout_ms", deserialize_with = "millis")]
    pub connect_timeout_ms: Duration,
    /// Send-rate limit, posts per second across the process (0 = none until a 429).
    #[serde(default)]
    pub max_rate_per_second: f64,
    /// How often the configuration file and the key files are checked for a change (a
    /// Kubernetes secret update); a change, or SIGHUP, reloads the keys.
    #[serde(default = "d::key_reload_interval_ms", deserialize_with = "millis")]
    pub key_reload_interval_ms: Duration,
}

impl WechatPayConfig {
    /// Each signing merchant as a configuration of its own (endpoints and timeouts shared): the
    /// top-level merchant first, then `[[wechatpay.merchants]]`, each with the `channel_ids` it
    /// signs for.
    pub fn signing_merchants(&self) -> Vec<(WechatPayConfig, Vec<String>)> {
        let mut top = self.clone();
        top.merchants.clear();
        let mut all = vec![(top.clone(), self.channel_ids.clone())];
        for m in &self.merchants {
            let mut c = top.clone();
            c.mchid.clone_from(&m.mchid);
            c.merchant_serial.clone_from(&m.merchant_serial);
            c.private_key_file.clone_from(&m.private_key_file);
            if !m.verification_keys.is_empty() {
                c.verification_keys.clone_from(&m.verification_keys);
            }
            c.wechatpay_serial.clone_from(&m.wechatpay_serial);
            c.apiv3_key_file.clone_from(&m.apiv3_key_file);
            c.max_rate_per_second = m.max_rate_per_second;
            c.channel_ids.clone_from(&m.channel_ids);
            all.push((c, m.channel_ids.clone()));
        }
        all
    }

    /// The signing merchant `mchid`'s configuration.
    pub fn merchant(&self, mchid: &str) -> Option<WechatPayConfig> {
        self.signing_merchants()
            .into_iter()
            .map(|(c, _)| c)
            .find(|c| c.mchid == mchid)
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Posts in flight at once, process-wide.
    #[serde(default = "d::max_in_flight")]
    pub max_in_flight: usize,
    /// Events buffered per partition before it is paused.
    #[serde(default = "d::partition_buffer")]
    pub partition_buffer: usize,
    /// Largest event accepted; larger is `malformed`.
    #[serde(default = "d::max_event_bytes")]
    pub max_event_bytes: usize,
    /// How long a revoked partition may take to finish in-flight posts (must exceed the
    /// request timeout, so no request of a revoked partition is still on the wire).
    #[serde(default = "d::drain_timeout_ms", deserialize_with = "millis")]
    pub drain_timeout_ms: Duration,
    /// How often done offsets are committed.
    #[serde(default = "d::commit_interval_ms", deserialize_with = "millis")]
    pub commit_interval_ms: Duration,
    /// Shutdown deadline after SIGTERM.
    #[serde(default = "d::shutdown_timeout_ms", deserialize_with = "millis")]
    pub shutdown_timeout_ms: Duration,
    /// How long Kafka may refuse the service's writes permanently (topic missing, ACL, fatal
    /// producer error) — the pod not ready meanwhile — before the process exits 1.
    #[serde(default = "d::produce_fault_exit_ms", deserialize_with = "millis")]
    pub produce_fault_exit_ms: Duration,
    /// Process one event at a time per partition (no key-level concurrency; for comparison).
    #[serde(default)]
    pub sequential: bool,
}

/// `[retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First backoff ceiling.
    #[serde(default = "d::initial_backoff_ms", deserialize_with = "millis")]
    pub initial_backoff_ms: Duration,
    /// Largest backoff (also caps `Retry-After`).
    #[serde(default = "d::max_backoff_ms", deserialize_with = "millis")]
    pub max_backoff_ms: Duration,
    /// Attempts (made while the breaker is closed) before `retries_exhausted`.
    #[serde(default = "d::max_attempts")]
    pub max_attempts: u32,
    /// Retry interval while WeChat Pay answers 401 (configuration fault).
    #[serde(default = "d::config_fault_retry_ms", deserialize_with = "millis")]
    pub config_fault_retry_ms: Duration,
    /// Transient failures within `breaker_window_ms` before the breaker may open.
    #[serde(default = "d::breaker_threshold")]
    pub breaker_threshold: u32,
    /// Share of failed requests within the window that opens the breaker; a failure counts
    /// toward an event's budget only below it (other requests succeed).
    #[serde(default = "d::breaker_failure_rate")]
    pub breaker_failure_rate: f64,
    /// The breaker's sliding window.
    #[serde(default = "d::breaker_window_ms", deserialize_with = "millis")]
    pub breaker_window_ms: Duration,
    /// How long the breaker stays open before a probe.
    #[serde(default = "d::breaker_cooldown_ms", deserialize_with = "millis")]
    pub breaker_cooldown_ms: Duration,
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// How long an acknowledged `PAY_SUCCESS` order is kept before its tombstone.
    #[serde(default = "d::final_retention_secs", deserialize_with = "seconds")]
    pub final_retention_secs: Duration,
    /// How often final orders are swept.
    #[serde(default = "d::sweep_interval_secs", deserialize_with = "seconds")]
    pub sweep_interval_secs: Duration,
    /// How long an order that is not an acknowledged final one (never paid, a draft, a payment
    /// dead-lettered) is kept after its last change before its tombstone; ≥ the final retention.
    #[serde(default = "d::non_final_retention_secs", deserialize_with = "seconds")]
    pub non_final_retention_secs: Duration,
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "d::listen")]
    pub listen: SocketAddr,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[kafka]`.
    pub kafka: KafkaConfig,
    /// `[wechatpay]`.
    pub wechatpay: WechatPayConfig,
    /// `[defaults]`: fields filled in when a snapshot lacks them.
    #[serde(default)]
    pub defaults: Defaults,
    /// `[pipeline]`.
    #[serde(default = "d::pipeline")]
    pub pipeline: PipelineConfig,
    /// `[retry]`.
    #[serde(default = "d::retry")]
    pub retry: RetryConfig,
    /// `[state]`.
    #[serde(default = "d::state")]
    pub state: StateConfig,
    /// `[http]`.
    #[serde(default = "d::http")]
    pub http: HttpConfig,
    /// The file it was read from ([`Config::load`]): reread to reload the keys.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Named defaults.
/// A `…_ms` key: whole milliseconds in the file, a [`Duration`] in the program.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// A `…_secs` key: whole seconds in the file, a [`Duration`] in the program.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

mod d {
    use std::time::Duration;

    use super::*;
    pub fn group_id() -> String {
        "catering-sync".into()
    }
    pub fn input_topic() -> String {
        "catering.order-events".into()
    }
    pub fn changelog_topic() -> String {
        "catering-sync.snapshots".into()
    }
    pub fn dlq_topic() -> String {
        "catering-sync.dlq".into()
    }
    pub fn assignor() -> Assignor {
        Assignor::CooperativeSticky
    }
    pub fn session_timeout_ms() -> Duration {
        Duration::from_millis(45_000)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn replication() -> i32 {
        3
    }
    pub fn base_url() -> String {
        crate::wechatpay::PRODUCTION_BASE_URL.into()
    }
    pub fn request_timeout_ms() -> Duration {
        Duration::from_millis(10_000)
    }
    pub fn connect_timeout_ms() -> Duration {
        Duration::from_millis(3_000)
    }
    pub fn key_reload_interval_ms() -> Duration {
        Duration::from_millis(10_000)
    }
    pub fn certificate_refresh_interval_ms() -> Duration {
        crate::wechatpay::platform::DEFAULT_REFRESH_INTERVAL
    }
    pub fn backup_probe_interval_ms() -> Duration {
        Duration::from_millis(60_000)
    }
    pub fn max_in_flight() -> usize {
        256
    }
    pub fn partition_buffer() -> usize {
        2_000
    }
    pub fn max_event_bytes() -> usize {
        1 << 20
    }
    pub fn drain_timeout_ms() -> Duration {
        Duration::from_millis(15_000)
    }
    pub fn commit_interval_ms() -> Duration {
        Duration::from_millis(1_000)
    }
    pub fn produce_fault_exit_ms() -> Duration {
        Duration::from_millis(60_000)
    }
    pub fn shutdown_timeout_ms() -> Duration {
        Duration::from_millis(20_000)
    }
    pub fn initial_backoff_ms() -> Duration {
        Duration::from_millis(200)
    }
    pub fn max_backoff_ms() -> Duration {
        Duration::from_millis(30_000)
    }
    pub fn max_attempts() -> u32 {
        10
    }
    pub fn config_fault_retry_ms() -> Duration {
        Duration::from_millis(15_000)
    }
    pub fn breaker_threshold() -> u32 {
        5
    }
    pub fn breaker_failure_rate() -> f64 {
        0.5
    }
    pub fn breaker_window_ms() -> Duration {
        Duration::from_millis(30_000)
    }
    pub fn breaker_cooldown_ms() -> Duration {
        Duration::from_millis(5_000)
    }
    pub fn final_retention_secs() -> Duration {
        Duration::from_secs(24 * 3600)
    }
    pub fn sweep_interval_secs() -> Duration {
        Duration::from_secs(60)
    }
    pub fn non_final_retention_secs() -> Duration {
        Duration::from_secs(7 * 24 * 3600)
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 9464))
    }
    pub fn pipeline() -> PipelineConfig {
        toml::from_str("").expect("defaults")
    }
    pub fn retry() -> RetryConfig {
        toml::from_str("").expect("defaults")
    }
    pub fn state() -> StateConfig {
        toml::from_str("").expect("defaults")
    }
    pub fn http() -> HttpConfig {
        toml::from_str("").expect("defaults")
    }
}

const PASS_THROUGH: [&str; 3] = ["common", "consumer", "producer"];

/// One environment override: where it goes, its variable and its raw text.
struct Override {
    path: Vec<String>,
    name: String,
    raw: String,
    /// Inserted as a string (the key's type said so, or it never looked like anything else).
    as_string: bool,
    /// Why the first guess (a number or a boolean) did not fit the key, once tried.
    guess_error: Option<String>,
}

/// Apply `CATERING_SYNC__…` overrides from `vars` to `table`.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in vars {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let mut parts: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if parts.iter().any(String::is_empty) {
            return Err(err(&name, "malformed environment override name"));
        }
        let pass_through =
            parts.len() == 3 && parts[0] == "kafka" && PASS_THROUGH.contains(&parts[1].as_str());
        if pass_through {
            parts[2] = parts[2].replace('_', ".");
        }
        // A first guess from the text; `from_toml` turns it into a string where the key's type
        // is a string (a numeric mchid, group id or password).
        let v = if pass_through {
            toml::Value::String(value.clone())
        } else {
            value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| value.parse::<f64>().map(toml::Value::Float))
                .or_else(|_| value.parse::<bool>().map(toml::Value::Boolean))
                .unwrap_or(toml::Value::String(value.clone()))
        };
        let as_string = v.is_str();
        set_path(table, &parts, v, &name)?;
        applied.push(Override {
            path: parts,
            name,
            raw: value,
            as_string,
            guess_error: None,
        });
    }
    Ok(applied)
}

fn set_path(
    table: &mut toml::Table,
    parts: &[String],
    v: toml::Value,
    name: &str,
) -> Result<(), ConfigError> {
    let (leaf, tables) = parts.split_last().expect("a non-empty path");
    let mut t = &mut *table;
    for p in tables {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry.as_table_mut().ok_or_else(|| {
            err(
                &tables.join("."),
                format!("{name} overrides a key that is not a table"),
            )
        })?;
    }
    t.insert(leaf.clone(), v);
    Ok(())
}

/// librdkafka's `max.poll.interval.ms` when not given.
const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;

/// The poll thread drains inside rebalance callbacks for up to the shutdown deadline: the
/// consumer's `max.poll.interval.ms` (given, or librdkafka's default) must outlast it.
fn check_poll_interval(k: &KafkaConfig, p: &PipelineConfig) -> Result<(), ConfigError> {
    let need = p.shutdown_timeout_ms.as_millis() as u64 + 5_000;
    match k.consumer.0.get("max.poll.interval.ms") {
        Some(v) if v.parse::<u64>().map_or(true, |v| v <= need) => Err(err(
            "kafka.consumer.max.poll.interval.ms",
            format!("must exceed pipeline.shutdown_timeout_ms + 5000 ({need}): the poll thread drains inside rebalance callbacks"),
        )),
        None if DEFAULT_MAX_POLL_INTERVAL_MS <= need => Err(err(
            "pipeline.shutdown_timeout_ms",
            format!("must be below {}: librdkafka's default max.poll.interval.ms ({DEFAULT_MAX_POLL_INTERVAL_MS}) must exceed it + 5000, as the poll thread drains inside rebalance callbacks (or set kafka.consumer.\"max.poll.interval.ms\" above {need})", DEFAULT_MAX_POLL_INTERVAL_MS - 5_000),
        )),
        _ => Ok(()),
    }
}

/// A duration, rate or size key and its bounds, outside which the service would stall, spin or
/// never act.
#[derive(Debug, Clone, Copy)]
struct Bound {
    key: &'static str,
    value: f64,
    min: f64,
    max: f64,
    /// 0 has a meaning of its own (no limit) and is accepted.
    zero_is_off: bool,
}

impl Bound {
    fn new(key: &'static str, value: f64, min: f64, max: f64) -> Self {
        Self {
            key,
            value,
            min,
            max,
            zero_is_off: false,
        }
    }

    fn zero_is_off(self) -> Self {
        Self {
            zero_is_off: true,
            ..self
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let v = self.value;
        if (self.zero_is_off && v == 0.0) || (v.is_finite() && v >= self.min && v <= self.max) {
            return Ok(());
        }
        let zero = if self.zero_is_off {
            "0 (no limit) or "
        } else {
            ""
        };
        Err(err(
            self.key,
            format!(
                "is {v}; must be {zero}within [{}, {}] (outside it the service would stall, spin or never act)",
                self.min, self.max
            ),
        ))
    }
}

impl Config {
    /// Parse TOML text with overrides from `vars`, then validate. Each override is parsed by the
    /// type of its key: one that looked numeric but lands on a string key is retried as the
    /// string it was.
    pub fn from_toml(
        text: &str,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("", e.message().to_string()))?;
        let mut overrides = apply_env(&mut table, vars)?;
        let config = loop {
            let e = match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(
                table.clone(),
            )) {
                Ok(c) => break c,
                Err(e) => e,
            };
            let key = e.path().to_string();
            let o = overrides.iter_mut().find(|o| o.path.join(".") == key);
            match o {
                Some(o) if !o.as_string => {
                    o.as_string = true;
                    o.guess_error = Some(e.into_inner().to_string());
                    set_path(
                        &mut table,
                        &o.path,
                        toml::Value::String(o.raw.clone()),
                        &o.name,
                    )?;
                }
                Some(o) => {
                    let why = o.guess_error.take();
                    let why = why.unwrap_or_else(|| e.into_inner().to_string());
                    return Err(err(&key, format!("{} = {:?}: {why}", o.name, o.raw)));
                }
                None => {
                    return Err(err(
                        if key == "." { "" } else { &key },
                        e.into_inner().to_string(),
                    ))
                }
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Read `path` and the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        let mut config = Self::from_toml(&text, std::env::vars())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Every key that is a duration, a rate or a size, with the bounds outside which the
    /// service would stall, spin or never act. A new such key gets its line here (a test checks
    /// that every `_ms`, `_secs` and rate field of this file has one).
    fn bounded_keys(&self) -> Vec<Bound> {
        let (k, w, p, r, s) = (
            &self.kafka,
            &self.wechatpay,
            &self.pipeline,
            &self.retry,
            &self.state,
        );
        const MIN_MS: f64 = 60_000.0;
        const HOUR_MS: f64 = 3_600_000.0;
        const DAY_S: f64 = 86_400.0;
        let int = |key, v: Duration, min, max| Bound::new(key, v.as_millis() as f64, min, max);
        let secs = |key, v: Duration, min, max| Bound::new(key, v.as_secs() as f64, min, max);
        vec![
            int(
                "kafka.session_timeout_ms",
                k.session_timeout_ms,
                1_000.0,
                HOUR_MS,
            ),
            int(
                "wechatpay.request_timeout_ms",
                w.request_timeout_ms,
                100.0,
                2.0 * MIN_MS,
            ),
            int(
                "wechatpay.connect_timeout_ms",
                w.connect_timeout_ms,
                100.0,
                MIN_MS,
            ),
            int(
                "wechatpay.key_reload_interval_ms",
                w.key_reload_interval_ms,
                100.0,
                60.0 * MIN_MS,
            ),
            // WeChat Pay asks for a download at least every 12 h.
            int(
                "wechatpay.certificate_refresh_interval_ms",
                w.certificate_refresh_interval_ms,
                1_000.0,
                12.0 * HOUR_MS,
            ),
            int(
                "wechatpay.backup_probe_interval_ms",
                w.backup_probe_interval_ms,
                100.0,
                HOUR_MS,
            ),
            // 0 = no limit until a 429; below 1/s (the limiter's floor) is a stall.
            Bound::new(
                "wechatpay.max_rate_per_second",
                w.max_rate_per_second,
                1.0,
                1e6,
            )
            .zero_is_off(),
            int(
                "pipeline.drain_timeout_ms",
                p.drain_timeout_ms,
                1_000.0,
                HOUR_MS,
            ),
            int(
                "pipeline.commit_interval_ms",
                p.commit_interval_ms,
                10.0,
                MIN_MS,
            ),
            int(
                "pipeline.shutdown_timeout_ms",
                p.shutdown_timeout_ms,
                1_000.0,
                HOUR_MS,
            ),
            int(
                "pipeline.produce_fault_exit_ms",
                p.produce_fault_exit_ms,
                1_000.0,
                HOUR_MS,
            ),
            Bound::new(
                "pipeline.max_event_bytes",
                p.max_event_bytes as f64,
                1_024.0,
                64.0 * 1_048_576.0,
            ),
            Bound::new(
                "pipeline.max_in_flight",
                p.max_in_flight as f64,
                1.0,
                10_000.0,
            ),
            Bound::new(
                "pipeline.partition_buffer",
                p.partition_buffer as f64,
                1.0,
                1_000_000.0,
            ),
            int(
                "retry.initial_backoff_ms",
                r.initial_backoff_ms,
                10.0,
                MIN_MS,
            ),
            int(
                "retry.max_backoff_ms",
                r.max_backoff_ms,
                100.0,
                10.0 * MIN_MS,
            ),
            int(
                "retry.config_fault_retry_ms",
                r.config_fault_retry_ms,
                100.0,
                10.0 * MIN_MS,
            ),
            int(
                "retry.breaker_cooldown_ms",
                r.breaker_cooldown_ms,
                100.0,
                10.0 * MIN_MS,
            ),
            int(
                "retry.breaker_window_ms",
                r.breaker_window_ms,
                1_000.0,
                HOUR_MS,
            ),
            Bound::new(
                "retry.breaker_failure_rate",
                r.breaker_failure_rate,
                0.01,
                1.0,
            ),
            Bound::new(
                "retry.max_attempts",
                f64::from(r.max_attempts),
                1.0,
                1_000.0,
            ),
            Bound::new(
                "retry.breaker_threshold",
                f64::from(r.breaker_threshold),
                1.0,
                1_000.0,
            ),
            secs(
                "state.final_retention_secs",
                s.final_retention_secs,
                1.0,
                365.0 * DAY_S,
            ),
            secs(
                "state.sweep_interval_secs",
                s.sweep_interval_secs,
                1.0,
                DAY_S,
            ),
            secs(
                "state.non_final_retention_secs",
                s.non_final_retention_secs,
                1.0,
                365.0 * DAY_S,
            ),
        ]
    }

    /// Refuse a duration, rate or size outside its bounds, naming the key and the bounds.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        self.bounded_keys().iter().try_for_each(Bound::check)
    }

    /// Checks that need no file system or network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_bounds()?;
        self.check_kafka()?;
        self.check_wechatpay()?;
        self.check_timing()?;
        self.check_retry_and_state()
    }

    /// Brokers, topic names, and the client properties catering-sync manages itself.
    fn check_kafka(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(err("kafka.brokers", "must not be empty"));
        }
        let topics = [
            ("kafka.input_topic", &k.input_topic),
            ("kafka.changelog_topic", &k.changelog_topic),
            ("kafka.dlq_topic", &k.dlq_topic),
        ];
        for (key, t) in topics {
            if t.is_empty()
                || t.len() > 249
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(err(key, format!("{t:?} is not a valid topic name")));
            }
        }
        if k.input_topic == k.changelog_topic
            || k.input_topic == k.dlq_topic
            || k.changelog_topic == k.dlq_topic
        {
            return Err(err(
                "kafka",
                "input_topic, changelog_topic and dlq_topic must differ",
            ));
        }
        for (table, props) in [
            ("common", &k.common),
            ("consumer", &k.consumer),
            ("producer", &k.producer),
        ] {
            for key in props.0.keys() {
                if [
                    "enable.auto.commit",
                    "enable.auto.offset.store",
                    "group.id",
                    "bootstrap.servers",
                ]
                .contains(&key.as_str())
                {
                    return Err(err(
                        &format!("kafka.{table}.{key}"),
                        "is managed by catering-sync and may not be overridden",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The signing merchant and the verification keys.
    fn check_wechatpay(&self) -> Result<(), ConfigError> {
        let w = &self.wechatpay;
        if w.mchid.is_empty() || !w.mchid.chars().all(|c| c.is_ascii_digit()) {
            return Err(err("wechatpay.mchid", "must be the numeric merchant id"));
        }
        if w.merchant_serial.is_empty() || !w.merchant_serial.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(err(
                "wechatpay.merchant_serial",
                "must be the hex certificate serial",
            ));
        }
        if w.verification_keys.is_empty() && w.apiv3_key_file.is_none() {
            return Err(err(
                "wechatpay.verification_keys",
                "at least one WeChat Pay key is required to verify responses (or wechatpay.apiv3_key_file, to download the platform certificates)",
            ));
        }
        let mut mchids = std::collections::BTreeSet::new();
        let mut channels = std::collections::BTreeSet::new();
        for (i, (m, ids)) in w.signing_merchants().iter().enumerate() {
            let key = |k: &str| {
                if i == 0 {
                    format!("wechatpay.{k}")
                } else {
                    format!("wechatpay.merchants[{}].{k}", i - 1)
                }
            };
            if m.mchid.is_empty() || !m.mchid.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(&key("mchid"), "must be the numeric merchant id"));
            }
            if !mchids.insert(m.mchid.clone()) {
                return Err(err(&key("mchid"), "names a merchant already configured"));
            }
            if m.merchant_serial.is_empty()
                || !m.merchant_serial.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(err(
                    &key("merchant_serial"),
                    "must be the hex certificate serial",
                ));
            }
            if !(0.0..=1e6).contains(&m.max_rate_per_second) {
                return Err(err(
                    &key("max_rate_per_second"),
                    "must be within [0, 1000000]",
                ));
            }
            for c in ids {
                if !channels.insert(c.clone()) {
                    return Err(err(
                        &key("channel_ids"),
                        format!("{c} is signed by two merchants"),
                    ));
                }
            }
        }
        if let Some(backup) = &w.backup_base_url {
            if backup.trim_end_matches('/') == w.base_url.trim_end_matches('/') {
                return Err(err(
                    "wechatpay.backup_base_url",
                    "must differ from wechatpay.base_url",
                ));
            }
        }
        for (i, v) in w.verification_keys.iter().enumerate() {
            let key = format!("wechatpay.verification_keys[{i}]");
            match (&v.key_id, &v.public_key_file, &v.certificate_file) {
                (Some(_), Some(_), None) | (None, None, Some(_)) => {}
                _ => {
                    return Err(err(
                        &key,
                        "give key_id with public_key_file, or certificate_file alone",
                    ))
                }
            }
        }
        Ok(())
    }

    /// The drain bound against the request and producer timeouts, the poll interval, shutdown.
    fn check_timing(&self) -> Result<(), ConfigError> {
        let (w, p) = (&self.wechatpay, &self.pipeline);
        if p.drain_timeout_ms < w.request_timeout_ms + Duration::from_millis(MIN_WRITE_WINDOW_MS) {
            return Err(err(
                "pipeline.drain_timeout_ms",
                format!("must be at least wechatpay.request_timeout_ms ({}) + {MIN_WRITE_WINDOW_MS}: the drain bound covers a request on the wire and then the producer timeout of its changelog write (derived from what is left), so nothing of a revoked partition can land after it", w.request_timeout_ms.as_millis()),
            ));
        }
        let k = &self.kafka;
        for name in [
            "message.timeout.ms",
            "delivery.timeout.ms",
            "request.timeout.ms",
        ] {
            if let Some(v) = k.producer.0.get(name).or_else(|| k.common.0.get(name)) {
                let bound = (p.drain_timeout_ms - w.request_timeout_ms).as_millis() as u64;
                if v.parse::<u64>().map_or(true, |v| v > bound) {
                    return Err(err(
                        &format!("kafka.producer.{name}"),
                        format!("is derived from the drain bound (pipeline.drain_timeout_ms − wechatpay.request_timeout_ms = {bound} ms at most) so that no changelog write lands after a revoke; remove it or set it ≤ {bound}"),
                    ));
                }
            }
        }
        check_poll_interval(k, p)?;
        if p.shutdown_timeout_ms <= p.drain_timeout_ms {
            return Err(err(
                "pipeline.shutdown_timeout_ms",
                format!(
                    "must exceed pipeline.drain_timeout_ms ({})",
                    p.drain_timeout_ms.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Backoff, breaker and retention relations, and the defaults' deployment kind.
    fn check_retry_and_state(&self) -> Result<(), ConfigError> {
        let r = &self.retry;
        crate::retry::Backoff::try_new(r.initial_backoff_ms, r.max_backoff_ms)
            .map_err(|e| err("retry.initial_backoff_ms", e.to_string()))?;
        if r.breaker_window_ms < r.breaker_cooldown_ms {
            return Err(err(
                "retry.breaker_window_ms",
                "must be ≥ retry.breaker_cooldown_ms, so a probe's evidence outlives the cooldown",
            ));
        }
        let s = &self.state;
        if s.non_final_retention_secs < s.final_retention_secs {
            return Err(err(
                "state.non_final_retention_secs",
                format!("must be ≥ state.final_retention_secs ({}): orders that never become final are kept longer than paid ones (SPEC §6)", s.final_retention_secs.as_secs()),
            ));
        }
        if r.breaker_threshold == 0 || r.breaker_threshold >= r.max_attempts {
            return Err(err(
                "retry.breaker_threshold",
                format!("must be ≥ 1 and below retry.max_attempts ({}), so an outage opens the breaker before any single event exhausts its retries", r.max_attempts),
            ));
        }
        if self.defaults.channel_id.is_some()
            && (self.defaults.sp_mchid.is_some() || self.defaults.sp_appid.is_some())
        {
            return Err(err("defaults.channel_id", "a deployment is either a channel (channel_id) or a service provider (sp_mchid/sp_appid), not both"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        [wechatpay]
        mchid = "1900000001"
        merchant_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
        private_key_file = "/keys/apiclient_key.pem"
        verification_keys = [{ key_id = "PUB_KEY_ID_0001", public_key_file = "/keys/pub.pem" }]
    "#;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn the_shipped_example_loads() {
        let text = include_str!("../../../deploy/config/catering-sync.example.toml");
        let c = Config::from_toml(text, vars(&[])).unwrap();
        assert_eq!(c.kafka.assignor, Assignor::CooperativeSticky);
        assert_eq!(c.wechatpay.verification_keys.len(), 1);
        assert_eq!(c.defaults.sp_appid.as_deref(), Some("wx8888888888888888"));
        assert!(c.pipeline.drain_timeout_ms > c.wechatpay.request_timeout_ms);
    }

    /// Numeric-looking strings in overrides land as strings where the key is a string (before:
    /// "invalid type: integer `1900000001`, expected a string"); a number key given text is an
    /// error naming the variable.
    #[test]
    fn overrides_are_parsed_by_the_type_of_their_key() {
        let c = Config::from_toml(
            MINIMAL,
            vars(&[
                ("CATERING_SYNC__WECHATPAY__MCHID", "1900000009"),
                ("CATERING_SYNC__KAFKA__GROUP_ID", "12345"),
                ("CATERING_SYNC__KAFKA__COMMON__SASL_PASSWORD", "0042"),
                ("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT", "64"),
                ("CATERING_SYNC__DEFAULTS__SUB_MCHID", "1900000109"),
                ("CATERING_SYNC__DEFAULTS__SUB_APPID", "true"),
                ("CATERING_SYNC__KAFKA__INPUT_TOPIC", "1e3"),
                ("CATERING_SYNC__WECHATPAY__MAX_RATE_PER_SECOND", "50"),
                ("CATERING_SYNC__KAFKA__CREATE_CHANGELOG", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.defaults.sub_mchid.as_deref(), Some("1900000109"));
        assert_eq!(c.defaults.sub_appid.as_deref(), Some("true"));
        assert_eq!(c.kafka.input_topic, "1e3");
        assert_eq!(c.wechatpay.max_rate_per_second, 50.0);
        assert!(!c.kafka.create_changelog);
        assert_eq!(c.wechatpay.mchid, "1900000009");
        assert_eq!(c.kafka.group_id, "12345");
        assert_eq!(c.kafka.common.0["sasl.password"], "0042");
        assert_eq!(c.pipeline.max_in_flight, 64);
        let e = Config::from_toml(
            MINIMAL,
            vars(&[("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT", "abc")]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT"),
            "{e}"
        );
        // A number of the wrong kind says so (not "invalid type: string").
        let var = "CATERING_SYNC__PIPELINE__COMMIT_INTERVAL_MS";
        let e = Config::from_toml(MINIMAL, vars(&[(var, "1.5")])).unwrap_err();
        assert_eq!(e.key, "pipeline.commit_interval_ms", "{e}");
        assert!(
            e.problem.contains(var) && e.problem.contains("floating point"),
            "{e}"
        );
        // A misspelt key names its variable.
        let var = "CATERING_SYNC__PIPELINE__COMMIT_INTERVAL";
        let e = Config::from_toml(MINIMAL, vars(&[(var, "500")])).unwrap_err();
        assert!(e.to_string().contains(var), "{e}");
    }

    /// Each duration and rate key at 0 (the rate, whose 0 means "no limit", at 0.5/s) and its
    /// bounds: refused with an error naming the key and the bounds. Before, `commit_interval_ms
    /// = 0` was accepted and panicked every worker after restore, `config_fault_retry_ms = 0`
    /// busy-looped 401s, `sweep_interval_secs = 0` swept in a loop.
    const ZERO_REFUSED: [(&str, &str, &str); 25] = [
        ("kafka.session_timeout_ms", "0", "[1000, 3600000]"),
        ("wechatpay.request_timeout_ms", "0", "[100, 120000]"),
        ("wechatpay.connect_timeout_ms", "0", "[100, 60000]"),
        ("wechatpay.key_reload_interval_ms", "0", "[100, 3600000]"),
        (
            "wechatpay.certificate_refresh_interval_ms",
            "0",
            "[1000, 43200000]",
        ),
        ("wechatpay.backup_probe_interval_ms", "0", "[100, 3600000]"),
        (
            "wechatpay.max_rate_per_second",
            "0.5",
            "0 (no limit) or within [1, 1000000]",
        ),
        ("pipeline.drain_timeout_ms", "0", "[1000, 3600000]"),
        ("pipeline.commit_interval_ms", "0", "[10, 60000]"),
        ("pipeline.shutdown_timeout_ms", "0", "[1000, 3600000]"),
        ("pipeline.produce_fault_exit_ms", "0", "[1000, 3600000]"),
        ("pipeline.max_event_bytes", "0", "[1024, 67108864]"),
        ("pipeline.max_in_flight", "0", "[1, 10000]"),
        ("pipeline.partition_buffer", "0", "[1, 1000000]"),
        ("retry.initial_backoff_ms", "0", "[10, 60000]"),
        ("retry.max_backoff_ms", "0", "[100, 600000]"),
        ("retry.config_fault_retry_ms", "0", "[100, 600000]"),
        ("retry.breaker_cooldown_ms", "0", "[100, 600000]"),
        ("retry.breaker_window_ms", "0", "[1000, 3600000]"),
        ("retry.breaker_failure_rate", "0", "[0.01, 1]"),
        ("retry.max_attempts", "0", "[1, 1000]"),
        ("retry.breaker_threshold", "0", "[1, 1000]"),
        ("state.final_retention_secs", "0", "[1, 31536000]"),
        ("state.sweep_interval_secs", "0", "[1, 86400]"),
        ("state.non_final_retention_secs", "0", "[1, 31536000]"),
    ];

    fn env_var(key: &str) -> String {
        format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
    }

    #[test]
    fn every_duration_and_rate_key_at_zero_is_refused_naming_its_bounds() {
        for (key, zero, bounds) in ZERO_REFUSED {
            let e = Config::from_toml(MINIMAL, vars(&[(&env_var(key), zero)]))
                .expect_err(&format!("{key} = {zero} must be refused"));
            assert_eq!(e.key, key, "{e}");
            let want = if bounds.starts_with('[') {
                format!("is {zero}; must be within {bounds}")
            } else {
                format!("is {zero}; must be {bounds}")
            };
            assert!(e.problem.starts_with(&want), "{key}: {e}");
        }
        // Absurdly large values stall too (a backoff or a probe interval of days).
        for (key, _, _) in ZERO_REFUSED {
            let e = Config::from_toml(MINIMAL, vars(&[(&env_var(key), "100000000000")]))
                .expect_err(&format!("{key} = 10^11 must be refused"));
            assert_eq!(e.key, key, "{e}");
        }
        let rate = [("CATERING_SYNC__WECHATPAY__MAX_RATE_PER_SECOND", "0")];
        let c = Config::from_toml(MINIMAL, vars(&rate)).unwrap();
        assert_eq!(c.wechatpay.max_rate_per_second, 0.0, "0 = no limit");
    }

    /// The table above and the service's bounds cover every field of this file whose name says
    /// it is a duration or a rate (a key added without bounds fails here, naming it).
    #[test]
    fn every_duration_and_rate_field_has_bounds() {
        let timed = |n: &str| {
            [
                "_ms",
                "_secs",
                "_seconds",
                "_hours",
                "_days",
                "_rate",
                "_per_second",
            ]
            .iter()
            .any(|s| n.ends_with(s))
        };
        let fields: Vec<&str> = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub ")?.split_once(": "))
            .map(|(name, _)| name)
            .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_') && timed(n))
            .collect();
        assert!(fields.len() >= 16, "{fields:?}");
        let base = Config::from_toml(MINIMAL, vars(&[])).unwrap();
        let bounded: Vec<&str> = base.bounded_keys().iter().map(|b| b.key).collect();
        let leaf = |k: &str| k.rsplit('.').next().unwrap_or(k).to_string();
        for f in fields {
            assert!(
                bounded.iter().any(|k| leaf(k) == f),
                "`{f}` is a duration or a rate: give it bounds in Config::bounded_keys"
            );
        }
        let tabled: Vec<&str> = ZERO_REFUSED.iter().map(|t| t.0).collect();
        let untabled: Vec<&&str> = bounded.iter().filter(|k| !tabled.contains(k)).collect();
        assert!(
            untabled.is_empty(),
            "add {untabled:?} to ZERO_REFUSED (the value that must be refused and the bounds)"
        );
        assert_eq!(bounded, tabled, "ZERO_REFUSED follows Config::bounded_keys");
    }

    #[test]
    fn minimal_config_gets_named_defaults() {
        let c = Config::from_toml(MINIMAL, vars(&[])).unwrap();
        assert_eq!(c.kafka.input_topic, "catering.order-events");
        assert_eq!(c.kafka.assignor, Assignor::CooperativeSticky);
        assert_eq!(c.pipeline.max_in_flight, 256);
        assert_eq!(c.wechatpay.base_url, "https://api.mch.weixin.qq.com");
    }

    #[test]
    fn environment_overrides_any_key() {
        let c = Config::from_toml(
            MINIMAL,
            vars(&[
                ("CATERING_SYNC__KAFKA__BROKERS", "kafka:9093"),
                ("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT", "8"),
                ("CATERING_SYNC__KAFKA__ASSIGNOR", "range"),
                ("CATERING_SYNC__KAFKA__COMMON__SASL_PASSWORD", "hunter2"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "kafka:9093");
        assert_eq!(c.pipeline.max_in_flight, 8);
        assert_eq!(c.kafka.assignor, Assignor::Range);
        assert_eq!(c.kafka.common.0["sasl.password"], "hunter2");
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "secrets are redacted in Debug"
        );
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            (MINIMAL.replace("brokers", "brokerz"), "kafka.brokerz"),
            (
                MINIMAL.replace("mchid = \"1900000001\"", "mchid = 1900000001"),
                "wechatpay.mchid",
            ),
            (
                format!("{MINIMAL}\n[pipeline]\nmax_in_flight = \"many\""),
                "pipeline.max_in_flight",
            ),
            (
                format!("{MINIMAL}\n[pipeline]\ndrain_timeout_ms = 5000"),
                "pipeline.drain_timeout_ms",
            ),
            (
                format!("{MINIMAL}\n[retry]\ninitial_backoff_ms = 0"),
                "retry.initial_backoff_ms",
            ),
            (
                format!("{MINIMAL}\n[kafka.consumer]\n\"enable.auto.commit\" = \"true\""),
                "kafka.consumer.enable.auto.commit",
            ),
            (
                MINIMAL.replace("key_id = \"PUB_KEY_ID_0001\", ", ""),
                "wechatpay.verification_keys[0]",
            ),
            (format!("{MINIMAL}\n[colour]\nx = 1"), "colour"),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(&text, vars(&[])).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        let e = Config::from_toml(
            MINIMAL,
            vars(&[("CATERING_SYNC__PIPELINE__PARTITION_BUFFER", "lots")]),
        )
        .unwrap_err();
        assert_eq!(e.key, "pipeline.partition_buffer", "{e}");
    }
}
