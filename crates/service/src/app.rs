//! Wiring and lifecycle of `catering-sync run`: load and check everything before connecting,
//! check the topics, start the operations server and the poll thread, run until the shutdown
//! signal, then drain, commit, leave the group and flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::Producer;

use crate::clock::{Cancel, Canceller};
use crate::config::{Config, ConfigError};
use crate::event::DecodeLimits;
use crate::pipeline::delivery::{Delivery, DeliverySettings};
use crate::pipeline::lease::Lease;
use crate::pipeline::{consumer::PollLoop, kafka, Shared, WorkerSettings};
use crate::retry::Backoff;
use crate::telemetry::{server, Health};
use crate::wechatpay::keystore::KeyStore;
use crate::wechatpay::{ClientConfig, WechatPayClient};

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The operator must fix the configuration (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A runtime failure (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl AppError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Runtime(_) => 1,
        }
    }
}

/// Load the keys the configuration names and build the WeChat Pay client on a key store that
/// [`crate::keys::watch`] may replace.
pub fn wechatpay_client(config: &Config) -> Result<WechatPayClient, ConfigError> {
    merchant_client(&config.wechatpay, config.pipeline.max_in_flight)
}

/// The client of one signing merchant (`WechatPayConfig::signing_merchants`); its connection
/// pool keeps up to `max_in_flight` idle connections (`pipeline.max_in_flight`).
pub fn merchant_client(
    w: &crate::config::WechatPayConfig,
    max_in_flight: usize,
) -> Result<WechatPayClient, ConfigError> {
    let set = crate::keys::load(w)?;
    let client_config = ClientConfig {
        base_url: w.base_url.clone(),
        request_timeout: w.request_timeout_ms,
        connect_timeout: w.connect_timeout_ms,
        wechatpay_serial: set.wechatpay_serial.clone(),
        backup_base_url: w.backup_base_url.clone(),
        backup_probe_interval: w.backup_probe_interval_ms,
        max_idle_connections: max_in_flight,
    };
    WechatPayClient::with_store(&client_config, Arc::new(KeyStore::new(set))).map_err(|e| {
        ConfigError {
            key: "wechatpay.base_url".into(),
            problem: e.to_string(),
        }
    })
}

/// Export the keys, start their reload watch and, in platform-certificate mode, download the
/// certificates (before the first post: its answer must verify with one) and start their
/// refresh — for each merchant. A failed first download is logged and retried; answers
/// meanwhile are unverified, so retried, never committed. Returns each merchant's client,
/// observed, and what stops the tasks.
async fn start_keys(
    config: &Config,
    merchants: Vec<(crate::config::WechatPayConfig, WechatPayClient)>,
    metrics: &crate::telemetry::metrics::Metrics,
) -> (
    Vec<(crate::config::WechatPayConfig, WechatPayClient)>,
    Canceller,
) {
    let stores: Arc<Vec<Arc<KeyStore>>> = Arc::new(
        merchants
            .iter()
            .map(|(_, c)| c.key_store().clone())
            .collect(),
    );
    crate::keys::export(&stores, metrics);
    let keys_stop = Canceller::new();
    let mut observed = Vec::new();
    for (w, client) in merchants {
        let store = client.key_store().clone();
        let client = client.with_observer(Arc::new(crate::keys::ClientTelemetry {
            stores: stores.clone(),
            metrics: metrics.clone(),
        }));
        if store.current().apiv3_key.is_some() {
            let first = client
                .download_certificates(crate::wechatpay::client::CertificateTrigger::Scheduled)
                .await
                .is_ok();
            tokio::spawn(crate::keys::refresh_certificates(
                client.clone(),
                w.certificate_refresh_interval_ms,
                keys_stop.token(),
                first,
            ));
        }
        if let Some(source) = config.source.clone() {
            tokio::spawn(crate::keys::watch(
                crate::keys::Watched {
                    source,
                    wechatpay: w.clone(),
                    store,
                    stores: stores.clone(),
                },
                w.key_reload_interval_ms,
                metrics.clone(),
                keys_stop.token(),
            ));
        }
        observed.push((w, client));
    }
    (observed, keys_stop)
}

/// One delivery per signing merchant (keys, breaker, rate limit and fault state of its own;
/// posts in flight bounded process-wide), and the routing of orders to them.
fn deliveries(
    merchants: Vec<(crate::config::WechatPayConfig, WechatPayClient)>,
    settings: &DeliverySettings,
    health: &Arc<Health>,
    metrics: &crate::telemetry::metrics::Metrics,
    lease: &Arc<Lease>,
) -> Arc<crate::pipeline::merchants::Merchants> {
    use crate::pipeline::merchants::{Board, Merchants};
    let board = Board::new(health.clone(), metrics.clone(), merchants.len());
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1)));
    let several = merchants.len() > 1;
    let mut routed = Vec::new();
    for (w, client) in merchants {
        let mut s = settings.clone();
        s.max_rate_per_second = w.max_rate_per_second;
        let d = Delivery::start_for(
            client,
            s,
            metrics.clone(),
            lease.clone(),
            board.clone(),
            permits.clone(),
        );
        routed.push((d, w.channel_ids.clone(), w.mchid.clone()));
    }
    Arc::new(if several {
        Merchants::several(routed, board)
    } else {
        let (d, _, _) = routed.remove(0);
        Merchants::single(d, board)
    })
}

/// A running service's handles, for tests and the demo.
pub struct Running {
    /// Health (readiness, liveness).
    pub health: Arc<Health>,
    /// The operations server's address.
    pub http_addr: std::net::SocketAddr,
    /// The metrics registry.
    pub registry: prometheus::Registry,
}

/// Run the service until `shutdown` resolves. `on_start` sees the running handles.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_start: impl FnOnce(&Running),
) -> Result<(), AppError> {
    let merchants = config
        .wechatpay
        .signing_merchants()
        .into_iter()
        .map(|(w, _)| merchant_client(&w, config.pipeline.max_in_flight).map(|c| (w, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let health = Arc::new(Health::default());
    let settings = delivery_settings(&config)?;
    let registry = prometheus::Registry::new();
    let metrics = crate::telemetry::metrics::Metrics::new(&registry)
        .map_err(|e| AppError::Runtime(format!("metrics: {e}")))?;
    let (merchants, keys_stop) = start_keys(&config, merchants, &metrics).await;
    // A gap of half the session timeout between watchdog ticks means the process was suspended
    // long enough that the group may have expelled it (pipeline::lease).
    let lease = Lease::new(config.kafka.session_timeout_ms / 2);
    let merchants = deliveries(merchants, &settings, &health, &metrics, &lease);
    let shared = shared(&config, merchants, &health, &metrics, &lease).await?;
    let producer = shared.producer.clone();
    let listener = server::bind(config.http.listen)
        .await
        .map_err(|e| ConfigError {
            key: "http.listen".into(),
            problem: format!("cannot listen on {}: {e}", config.http.listen),
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let http_stop = Canceller::new();
    let http = tokio::spawn(server::serve(
        listener,
        health.clone(),
        registry.clone(),
        http_stop.token(),
    ));
    // Explicit: dropping `run`'s future (its runtime shutting down) must not start a drain.
    let stop = Canceller::explicit();
    let thread = start_poll_thread(&config, shared, stop.token())?;
    lease
        .start_watchdog()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    on_start(&Running {
        health: health.clone(),
        http_addr,
        registry: registry.clone(),
    });
    tracing::info!(http = %http_addr, group = %config.kafka.group_id, "catering-sync running");
    shutdown.await;
    tracing::info!("shutdown requested");
    stop.cancel();
    join_poll_thread(&config, thread).await;
    let _ = producer.flush(Duration::from_secs(5));
    http_stop.cancel();
    keys_stop.cancel();
    let _ = http.await;
    tracing::info!("stopped");
    Ok(())
}

/// The delivery machinery's settings from `[retry]`, `[pipeline]` and `[wechatpay]`.
fn delivery_settings(config: &Config) -> Result<DeliverySettings, ConfigError> {
    let r = &config.retry;
    Ok(DeliverySettings {
        backoff: Backoff::try_new(r.initial_backoff_ms, r.max_backoff_ms).map_err(|e| {
            ConfigError {
                key: "retry.initial_backoff_ms".into(),
                problem: e.to_string(),
            }
        })?,
        max_attempts: r.max_attempts,
        config_fault_retry: r.config_fault_retry_ms,
        breaker: crate::retry::BreakerPolicy {
            min_failures: r.breaker_threshold,
            failure_rate: r.breaker_failure_rate,
            window: r.breaker_window_ms,
            cooldown: r.breaker_cooldown_ms,
        },
        max_in_flight: config.pipeline.max_in_flight,
        max_rate_per_second: config.wechatpay.max_rate_per_second,
    })
}

/// What every partition worker shares: topics checked, the producer made, settings derived.
async fn shared(
    config: &Config,
    merchants: Arc<crate::pipeline::merchants::Merchants>,
    health: &Arc<Health>,
    metrics: &crate::telemetry::metrics::Metrics,
    lease: &Arc<Lease>,
) -> Result<Arc<Shared>, AppError> {
    let partitions = kafka::ensure_topics(&config.kafka).await.map_err(|e| {
        if e.is_configuration() {
            AppError::Config(ConfigError {
                key: "kafka".into(),
                problem: e.to_string(),
            })
        } else {
            AppError::Runtime(e.to_string())
        }
    })?;
    tracing::info!(input = %config.kafka.input_topic, partitions, "topics checked");
    let p = &config.pipeline;
    let producer_config = kafka::pipeline_producer_config(
        &config.kafka,
        p.drain_timeout_ms,
        config.wechatpay.request_timeout_ms,
        p.max_event_bytes,
    );
    let producer = crate::state::producer_reporting(
        &producer_config,
        Some(health.clone()),
        p.produce_fault_exit_ms,
    )
    .map_err(|e| AppError::Runtime(format!("producer: {e}")))?;
    Ok(Arc::new(Shared {
        group: config.kafka.group_id.clone(),
        input_topic: config.kafka.input_topic.clone(),
        changelog_topic: config.kafka.changelog_topic.clone(),
        defaults: config.defaults.clone(),
        limits: DecodeLimits {
            max_bytes: p.max_event_bytes,
            ..Default::default()
        },
        dlq_topic: config.kafka.dlq_topic.clone(),
        producer,
        lease: lease.clone(),
        merchants,
        health: health.clone(),
        metrics: metrics.clone(),
        restore_config: kafka::restore_config(&config.kafka),
        settings: WorkerSettings {
            partition_buffer: p.partition_buffer,
            commit_interval: p.commit_interval_ms,
            drain_timeout: p.drain_timeout_ms,
            shutdown_timeout: p.shutdown_timeout_ms,
            sequential: p.sequential,
            final_retention: config.state.final_retention_secs,
            non_final_retention: config.state.non_final_retention_secs,
            sweep_interval: config.state.sweep_interval_secs.max(Duration::from_secs(1)),
        },
    }))
}

/// The poll thread owns the group consumer until `stop`.
fn start_poll_thread(
    config: &Config,
    shared: Arc<Shared>,
    stop: Cancel,
) -> Result<std::thread::JoinHandle<()>, AppError> {
    let poll = PollLoop::new(
        shared,
        &kafka::consumer_config(&config.kafka),
        tokio::runtime::Handle::current(),
    )
    .map_err(|e| AppError::Runtime(format!("consumer: {e}")))?;
    std::thread::Builder::new()
        .name("kafka-poll".into())
        .spawn(move || poll.run(stop))
        .map_err(|e| AppError::Runtime(e.to_string()))
}

/// Wait for the poll thread to finish, drain and leave the group; past the deadline, exit.
async fn join_poll_thread(config: &Config, thread: std::thread::JoinHandle<()>) {
    // Finishing, a revocation while finishing, then the final drain, each with its margin.
    let deadline = config.pipeline.shutdown_timeout_ms
        + config.pipeline.drain_timeout_ms
        + Duration::from_secs(10);
    let joined = tokio::task::spawn_blocking(move || thread.join());
    if tokio::time::timeout(deadline, joined).await.is_err() {
        // Returning would drop the runtime under a live poll thread: tasks aborted mid-request
        // while the consumer then leaves the group. Crash-only instead.
        let msg = "shutdown deadline passed before the poll thread finished: exiting without leaving the group";
        crate::telemetry::exit_crash_only(msg);
    }
}
