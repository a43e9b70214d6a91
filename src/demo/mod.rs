//! `catering-sync demo`: the whole pipeline on an embedded default. An in-process Kafka-protocol
//! broker (rdkafka's `MockCluster`), the sandbox in-process with a little latency and a few
//! transient faults, generated orders plus deliberately bad events, and the real `run` pipeline as
//! two consumers of one group. It verifies that every order reached the sandbox with all its
//! statuses in order and the expected final body, and that the bad events, and only they, are in
//! the dead-letter topic.

pub mod orders;
mod report;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::sandbox::{Faults, SandboxConfig, SandboxHandle};

pub use report::{DemoReport, Verification};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Orders to generate.
    pub orders: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// Faults of the sandbox.
    pub faults: Faults,
    /// Give up waiting after this long (the verification then fails).
    pub deadline: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            orders: 2000,
            seed: 20261127,
            partitions: 4,
            faults: Faults {
                latency_ms: 2,
                jitter_ms: 8,
                rate_503: 0.01,
                rate_500: 0.005,
                rate_drop: 0.002,
                rate_signtest: 0.002,
                ..Faults::default()
            },
            deadline: Duration::from_secs(300),
        }
    }
}

/// Progress: (orders complete at the sandbox, orders).
pub type Progress = Box<dyn Fn(usize, usize) + Send + Sync>;

/// A running demo stack (kept alive by `--keep-running`).
pub struct DemoStack {
    /// The sandbox.
    pub sandbox: SandboxHandle,
    /// `/metrics` addresses of the two consumers.
    pub metrics: Vec<std::net::SocketAddr>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), crate::app::AppError>>>,
    _keys: tempfile::TempDir,
}

impl DemoStack {
    /// Stop the consumers (drain, commit, leave) and the sandbox.
    pub async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.sandbox.shutdown().await;
    }
}

fn config_text(
    bootstrap: &str,
    keys_dir: &std::path::Path,
    k: &crate::keygen::GeneratedKeys,
    sandbox_url: &str,
) -> String {
    crate::local::LocalConfig::new(bootstrap, sandbox_url, keys_dir, k)
        .names(
            "catering-sync-demo",
            "catering.order-events",
            "catering-sync.snapshots",
            "catering-sync.dlq",
        )
        .quick()
        .set("kafka.assignor", "cooperative-sticky")
        .property("consumer", "statistics.interval.ms", "1000")
        .set("wechatpay.request_timeout_ms", 3_000)
        .set("pipeline.max_in_flight", 16)
        .set("retry.initial_backoff_ms", 20)
        .set("retry.max_backoff_ms", 1_000)
        .set("retry.max_attempts", 8)
        .set("retry.breaker_threshold", 5)
        .set("retry.breaker_cooldown_ms", 500)
        .set("retry.config_fault_retry_ms", 1_000)
        .to_toml()
}

/// Run the demo. The mock cluster lives on this task (it is not `Send`), so run this future with
/// `block_on`, not `spawn`. With `keep_running`, the stack is returned still running.
pub async fn run(
    options: &DemoOptions,
    progress: Progress,
    keep_running: bool,
) -> anyhow::Result<(DemoReport, Option<DemoStack>)> {
    let started = Instant::now();
    let cluster = MockCluster::new(3)?;
    let bootstrap = cluster.bootstrap_servers();
    for topic in [
        "catering.order-events",
        "catering-sync.snapshots",
        "catering-sync.dlq",
    ] {
        cluster.create_topic(topic, options.partitions, 1)?;
    }
    let keys_dir = tempfile::tempdir()?;
    let keys = crate::keygen::generate("1900000001", &mut rand::rngs::OsRng)?;
    keys.write_to(keys_dir.path())?;
    let mut sandbox_config =
        SandboxConfig::from_generated(&keys).map_err(|e| anyhow::anyhow!(e))?;
    sandbox_config.faults = options.faults.clone();
    let sandbox = SandboxHandle::start(sandbox_config, "127.0.0.1:0".parse()?).await?;

    let orders = orders::generate(options.orders, options.seed);
    let paid = orders
        .iter()
        .find(|o| o.paid)
        .map_or("none", |o| o.no.as_str())
        .to_string();
    let bad = orders::bad_events(&paid);
    let events: usize = orders.iter().map(|o| o.events.len()).sum::<usize>() + bad.len();
    produce(&bootstrap, &orders, &bad).await?;

    let text = config_text(&bootstrap, keys_dir.path(), &keys, &sandbox.base_url());
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let registries = Arc::new(Mutex::new(Vec::new()));
    let mut metrics = Vec::new();
    for _ in 0..2 {
        let config =
            Config::from_toml(&text, std::iter::empty()).map_err(|e| anyhow::anyhow!(e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let regs = registries.clone();
        tasks.push(tokio::spawn(crate::app::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |r| {
                regs.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(r.registry.clone());
                let _ = started_tx.send(r.http_addr);
            },
        )));
        metrics.push(started_rx.await?);
        stops.push(stop);
    }
    let complete = |sandbox: &SandboxHandle| report::complete_orders(sandbox, &orders);
    let deadline = Instant::now() + options.deadline;
    loop {
        let done = complete(&sandbox);
        progress(done, orders.len());
        if done == orders.len() && report::dead_letters_written(&registries) >= bad.len() as u64 {
            break;
        }
        if Instant::now() > deadline || tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let processing = started.elapsed();
    let reader = Config::from_toml(&text, std::iter::empty()).map_err(|e| anyhow::anyhow!(e))?;
    let dlq = tokio::task::spawn_blocking(move || {
        crate::replay::read_topic(
            &reader.kafka,
            &reader.kafka.dlq_topic,
            Duration::from_secs(60),
        )
    })
    .await??;
    let report = report::build(
        &orders,
        &bad,
        events,
        &sandbox,
        &registries,
        &dlq,
        processing,
    );
    let stack = DemoStack {
        sandbox,
        metrics,
        stops,
        tasks,
        _keys: keys_dir,
    };
    if keep_running {
        // The cluster must outlive the stack: the caller keeps this task alive until Ctrl-C.
        std::mem::forget(cluster);
        return Ok((report, Some(stack)));
    }
    stack.stop().await;
    drop(cluster);
    Ok((report, None))
}

async fn produce(
    bootstrap: &str,
    orders: &[orders::DemoOrder],
    bad: &[orders::BadEvent],
) -> anyhow::Result<()> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()?;
    // Interleave orders round by round, each order's events in order.
    let rounds = orders.iter().map(|o| o.events.len()).max().unwrap_or(0);
    let mut sends = Vec::new();
    for round in 0..rounds {
        for o in orders {
            if let Some(e) = o.events.get(round) {
                sends.push(
                    producer
                        .send_result(
                            FutureRecord::to("catering.order-events")
                                .key(o.no.as_bytes())
                                .payload(e.as_slice()),
                        )
                        .map_err(|(e, _)| e)?,
                );
            }
        }
    }
    for b in bad {
        let mut r =
            FutureRecord::<[u8], [u8]>::to("catering.order-events").payload(b.value.as_slice());
        if let Some(k) = &b.key {
            r = r.key(k.as_bytes());
        }
        sends.push(producer.send_result(r).map_err(|(e, _)| e)?);
    }
    for s in sends {
        s.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}
