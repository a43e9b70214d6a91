//! End-to-end runs: the real `run` service as a child process, a broker process (tansu, or the
//! mock cluster of [`super::broker`]), the sandbox as a third process in benchmark mode.
//! Throughput runs read a backlog from one shared input topic (each run is a fresh consumer group
//! with its own changelog and dead-letter topics); the latency run produces at a fixed rate into
//! a fresh topic and compares when each event was produced with when its POST reached the
//! sandbox.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::broker::{Broker, BrokerKind};
use super::stack::{free_port, SandboxProc, ServiceProc};
use super::{order_events, order_no};
use crate::keygen::GeneratedKeys;

/// Input partitions of the benchmark topics (the scaling runs of `bench all` vary it).
pub const PARTITIONS: i32 = 4;
/// How many events after an order's `CREATE_DEAL` its `PAY_SUCCESS` is produced.
const PAY_LAG: usize = 200;
/// Dishes per benchmark order.
const DISHES: usize = 5;
/// `fetch.wait.max.ms` of every consumer in the benchmark, on either broker (see
/// [`Bed::config_text`]).
const FETCH_WAIT_MS: u32 = 10;

/// The test keys of this benchmark process, generated once: two RSA-2048 key pairs took up to
/// seconds per bed, and `bench all` starts a fresh bed for most runs.
pub fn bench_keys() -> anyhow::Result<GeneratedKeys> {
    static KEYS: std::sync::OnceLock<GeneratedKeys> = std::sync::OnceLock::new();
    if let Some(keys) = KEYS.get() {
        return Ok(keys.clone());
    }
    let keys = crate::keygen::generate("1900000001", &mut rand::rngs::OsRng)?;
    Ok(KEYS.get_or_init(|| keys).clone())
}

/// What every run shares: the broker, the keys, a scratch directory, the backlog topic.
pub struct Bed {
    /// Scratch directory (configs, logs, keys); removed on drop.
    pub dir: tempfile::TempDir,
    /// Keys for the service and the sandbox (generated for this run: test keys).
    pub keys: GeneratedKeys,
    /// The broker.
    pub broker: Broker,
    /// Sandbox request signatures verified: one in this many.
    pub verify_every: u64,
    /// Posts in flight at once, service-wide (`pipeline.max_in_flight`).
    pub max_in_flight: usize,
}

impl Bed {
    /// Start the broker `kind` and write fresh keys.
    pub fn new(
        kind: BrokerKind<'_>,
        verify_every: u64,
        max_in_flight: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("catering-sync-bench-")
            .tempdir()?;
        let keys = bench_keys()?;
        keys.write_to(&dir.path().join("keys"))?;
        let log = match kind {
            BrokerKind::Tansu(_) => "tansu.log",
            BrokerKind::MockCluster => "mock-cluster.log",
        };
        let broker = Broker::start(kind, &dir.path().join(log))?;
        Ok(Self {
            dir,
            keys,
            broker,
            verify_every,
            max_in_flight,
        })
    }

    /// `result`, keeping the scratch directory (configurations and logs) when it is an error.
    pub fn keep_if_failed<T>(&mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            self.dir.disable_cleanup(true);
            super::all::step(&format!(
                "failed; configurations and logs kept in {}",
                self.dir.path().display()
            ));
        }
        result
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// A client configuration for the benchmark's own Kafka clients.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.broker.bootstrap())
            .set("broker.address.family", "v4");
        c
    }

    /// Create `topic` with `partitions` partitions (compacted: ignored by the mock cluster,
    /// which never compacts).
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        compact: bool,
    ) -> anyhow::Result<()> {
        if let Broker::MockCluster(mock) = &self.broker {
            // No CreateTopics handler in the mock cluster: through its own API.
            return tokio::task::block_in_place(|| mock.create_topic(topic, partitions));
        }
        let admin: AdminClient<DefaultClientContext> = self.client().create()?;
        let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        if compact {
            t = t.set("cleanup.policy", "compact");
        }
        for r in admin.create_topics([&t], &AdminOptions::new()).await? {
            if let Err((name, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    bail!("creating topic {name}: {code}");
                }
            }
        }
        Ok(())
    }

    /// The changelog and dead-letter topics of run `run`, co-partitioned with its input of
    /// `partitions` partitions. On tansu the service creates them at start, as in production;
    /// the mock cluster cannot (no CreateTopics), so they are made here first.
    pub async fn service_topics(&self, run: &str, partitions: i32) -> anyhow::Result<()> {
        if self.broker.is_mock() {
            self.create_topic(&changelog_topic(run), partitions, true)
                .await?;
            self.create_topic(&dlq_topic(run), partitions, false)
                .await?;
        }
        Ok(())
    }

    /// The service configuration of one run.
    fn config_text(
        &self,
        run: &str,
        input: &str,
        sandbox: &str,
        sequential: bool,
        http_port: u16,
    ) -> String {
        let mut config = crate::local::LocalConfig::new(
            self.broker.bootstrap(),
            sandbox,
            &self.keys_dir(),
            &self.keys,
        )
        .names(
            &format!("bench-{run}"),
            input,
            &changelog_topic(run),
            &dlq_topic(run),
        );
        if !self.broker.is_mock() {
            // tansu hangs a second member's SyncGroup under cooperative-sticky (one member here,
            // but keep what works on the test broker). The mock cluster runs the service's
            // default assignor, as production does.
            config = config.set("kafka.assignor", "range");
        }
        let config = config
            .property("common", "broker.address.family", "v4")
            .property("consumer", "allow.auto.create.topics", "false")
            // Both test brokers answer a waiting fetch only when fetch.wait.max.ms expires, not
            // when data arrives (tansu measured; the mock cluster delays an empty fetch response
            // by its MaxWait, rdkafka_mock_handlers.c; Kafka answers at once): a short wait keeps
            // the broker hop from dominating the latency run. Same value on both, so the two
            // latency rows differ by the broker alone.
            .property("consumer", "fetch.wait.max.ms", &FETCH_WAIT_MS.to_string())
            .set("pipeline.sequential", sequential)
            .set("pipeline.max_in_flight", self.max_in_flight as i64)
            .set("http.listen", format!("127.0.0.1:{http_port}"));
        format!("# catering-sync bench: run {run}\n{}", config.to_toml())
    }
}

/// The changelog topic of run `run`.
fn changelog_topic(run: &str) -> String {
    format!("bench-{run}-state")
}

/// The dead-letter topic of run `run`.
fn dlq_topic(run: &str) -> String {
    format!("bench-{run}-dlq")
}

/// Counts failed deliveries of the benchmark producer.
#[derive(Default)]
struct Failures(AtomicU64);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The whole stream of `orders` orders in production order: every create, and each pay after
/// [`PAY_LAG`] more events. Returns (order index, 0 create / 1 pay).
pub fn stream(orders: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(2 * orders);
    let lag = PAY_LAG / 2;
    for i in 0..orders {
        out.push((i, 0));
        if i >= lag {
            out.push((i - lag, 1));
        }
    }
    for i in orders.saturating_sub(lag)..orders {
        out.push((i, 1));
    }
    out
}

/// Mean bytes of a benchmark event's value (a create and its pay).
pub fn event_bytes() -> usize {
    let [create, pay] = order_events(0, DISHES);
    (create.len() + pay.len()) / 2
}

fn producer(bed: &Bed, linger_ms: u32) -> anyhow::Result<BaseProducer<Failures>> {
    Ok(bed
        .client()
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create_with_context(Failures::default())?)
}

fn send(p: &BaseProducer<Failures>, topic: &str, key: &str, value: &[u8]) -> anyhow::Result<()> {
    send_waiting(p, BaseRecord::to(topic).key(key).payload(value))
}

/// Enqueue `record`, serving delivery reports while the producer's queue is full.
pub fn send_waiting<C: ProducerContext>(
    p: &BaseProducer<C>,
    mut record: BaseRecord<'_, str, [u8], C::DeliveryOpaque>,
) -> anyhow::Result<()> {
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                p.poll(Duration::from_millis(50));
                record = r;
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn flush(p: &BaseProducer<Failures>) -> anyhow::Result<()> {
    p.flush(Duration::from_secs(120))?;
    let failed = p.context().0.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} benchmark records were not delivered to the broker");
    }
    Ok(())
}

/// Produce the events of `orders` orders into `topic` as fast as the broker takes them (blocking).
pub fn produce_backlog(bed: &Bed, topic: &str, orders: usize) -> anyhow::Result<u64> {
    let p = producer(bed, 20)?;
    let mut n = 0;
    for (i, which) in stream(orders) {
        let value = &order_events(i, DISHES)[which];
        send(&p, topic, &order_no(i), value)?;
        n += 1;
        if n % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    flush(&p)?;
    Ok(n)
}

/// What a throughput run varies.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    /// A label.
    pub name: &'a str,
    /// Sandbox latency per request.
    pub latency_ms: u64,
    /// One event at a time per partition (`pipeline.sequential`).
    pub sequential: bool,
    /// Partitions of the input topic (for the report: the topic has them).
    pub partitions: i32,
    /// The service pinned to CPU 0 (`taskset -c 0`).
    pub pinned: bool,
    /// After the window, SIGTERM and require a clean exit (the service finishes what it has
    /// received first: seconds on a backlog); else the service is killed.
    pub drain: bool,
}

/// One throughput run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// A label.
    pub name: String,
    /// Sandbox latency per request.
    pub latency_ms: u64,
    /// One event at a time per partition.
    pub sequential: bool,
    /// Partitions of the input topic.
    pub partitions: i32,
    /// The service pinned to CPU 0.
    pub pinned: bool,
    /// Acknowledged posts in the window.
    pub posts: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// The service's CPU time in the window.
    pub cpu: Duration,
    /// The sandbox's and the broker's CPU time in the window.
    pub others_cpu: Duration,
    /// Retries and dead letters in the window (0 expected).
    pub retries: u64,
    /// Dead letters in the window.
    pub dead_letters: u64,
    /// Whether the service ran out of backlog before the window ended.
    pub exhausted: bool,
}

impl RunResult {
    /// Acknowledged posts per second.
    pub fn per_second(&self) -> f64 {
        self.posts as f64 / self.elapsed.as_secs_f64()
    }

    /// The service's CPU time per acknowledged post.
    pub fn cpu_per_post(&self) -> Duration {
        self.cpu.div_f64(self.posts.max(1) as f64)
    }
}

struct Sample {
    at: Instant,
    delivered: f64,
    retries: f64,
    dead_letters: f64,
    cpu: Duration,
    others: Duration,
}

async fn sample(
    svc: &ServiceProc,
    sandbox: &SandboxProc,
    broker: &Broker,
) -> anyhow::Result<Sample> {
    let m = svc.metrics().await?;
    Ok(Sample {
        at: Instant::now(),
        cpu: svc.proc.cpu(),
        others: sandbox.proc.cpu() + broker.cpu(),
        delivered: m.sum("catering_sync_posts_total", &["outcome=\"delivered\""]),
        retries: m.sum("catering_sync_retries_total", &[]),
        dead_letters: m.sum("catering_sync_dead_letters_total", &[]),
    })
}

/// Run the service over the backlog in `input` (`events` events) for `window` after a warm-up,
/// with a sandbox answering after `latency_ms`.
pub async fn throughput(
    bed: &Bed,
    spec: RunSpec<'_>,
    input: &str,
    events: u64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<RunResult> {
    let RunSpec {
        name,
        latency_ms,
        sequential,
        partitions,
        pinned,
        drain,
    } = spec;
    let run = format!("{name}-{:08x}", rand::random::<u32>());
    bed.service_topics(&run, partitions).await?;
    let sandbox = SandboxProc::start(
        &bed.keys_dir(),
        latency_ms,
        bed.verify_every,
        &bed.dir.path().join(format!("{run}.sandbox.log")),
    )
    .await?;
    let port = free_port()?;
    let config = bed.config_text(&run, input, &sandbox.url, sequential, port);
    let cpus = pinned.then_some("0");
    let mut svc = ServiceProc::start(bed.dir.path(), &run, &config, port, cpus)?;
    // Started: the first acknowledged post (after the group join and the empty restore), and
    // every partition restored: with 64 partitions the first post comes while most are still
    // restoring (from the first post, 0.5 s of warm-up and a 1 s window measured 21 posts/s;
    // 5 s and 3 s measured 619).
    svc.wait_until("acknowledged post", Duration::from_secs(90), |m| {
        m.sum("catering_sync_posts_total", &["outcome=\"delivered\""]) > 0.0
    })
    .await
    .with_context(|| format!("run {run}"))?;
    svc.wait_ready(Duration::from_secs(90))
        .await
        .with_context(|| format!("run {run}"))?;
    tokio::time::sleep(warmup).await;
    let a = sample(&svc, &sandbox, &bed.broker).await?;
    tokio::time::sleep(window).await;
    let b = sample(&svc, &sandbox, &bed.broker).await?;
    svc.proc
        .check_alive()
        .context("the service died during the run")?;
    if drain {
        let status = svc.proc.terminate(Duration::from_secs(60))?;
        if !status.success() {
            bail!(
                "run {run}: the service exited with {status} (log: {})",
                svc.log.display()
            );
        }
    }
    Ok(RunResult {
        name: name.to_string(),
        latency_ms,
        sequential,
        partitions,
        pinned,
        posts: (b.delivered - a.delivered) as u64,
        elapsed: b.at - a.at,
        cpu: b.cpu.saturating_sub(a.cpu),
        others_cpu: b.others.saturating_sub(a.others),
        retries: (b.retries - a.retries) as u64,
        dead_letters: (b.dead_letters - a.dead_letters) as u64,
        // Every event is a post (a create and its pay are never coalesced: different statuses).
        exhausted: b.delivered >= events as f64,
    })
}

/// Event produced → POST arrived at the sandbox.
#[derive(Debug, Clone)]
pub struct LatencyResult {
    /// The broker's name.
    pub broker: &'static str,
    /// Target rate of the producer.
    pub rate: f64,
    /// The service's CPU time from the first event produced to the last post.
    pub cpu: Duration,
    /// The broker's CPU time over the same span.
    pub broker_cpu: Duration,
    /// Events produced (each one a post).
    pub events: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Maximum.
    pub max: Duration,
    /// The broker hop alone: produced → received by a plain consumer (same settings) reading
    /// the same topic at the same time.
    pub broker_p50: Duration,
    /// 99th percentile of the broker hop.
    pub broker_p99: Duration,
    /// What catering-sync adds, per event: POST arrival − the plain consumer's receipt
    /// (negative differences count as 0). Median.
    pub added_p50: Duration,
    /// 99th percentile of the added latency.
    pub added_p99: Duration,
}

/// The baseline consumer's context: a partition's end is how it knows it is caught up, not an
/// error (librdkafka also reports each one as a global error, which the default context logs at
/// ERROR: hundreds of lines per latency run).
struct EndsQuietly;

impl ClientContext for EndsQuietly {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::KafkaError;
        let end = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EndsQuietly {}

/// Read every partition of `topic` from the start with a plain consumer until `events` records
/// arrived (or `limit` passed); the arrival time (µs) of each, indexed like the producer's.
fn consume_arrivals(
    client: ClientConfig,
    topic: &str,
    orders: usize,
    events: usize,
    limit: Duration,
    started: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<Vec<u64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer<EndsQuietly> = client
        .clone()
        .set("group.id", "bench-latency-baseline")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS.to_string())
        .set("enable.partition.eof", "true")
        .create_with_context(EndsQuietly)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let index: HashMap<String, usize> = (0..orders).map(|i| (order_no(i), i)).collect();
    let mut at = vec![0u64; 2 * orders];
    let mut seen = 0;
    let deadline = Instant::now() + limit;
    // Fetching from every partition (each reported its end) before production starts.
    let mut at_end = std::collections::HashSet::new();
    let mut started = Some(started);
    while seen < events && Instant::now() < deadline {
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if at_end.len() == PARTITIONS as usize {
                    if let Some(s) = started.take() {
                        let _ = s.send(());
                    }
                }
                continue;
            }
            Some(m) => m?,
        };
        let now = now_us();
        let i = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| index.get(k));
        let seq = m
            .payload()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| v["seq"].as_u64());
        if let (Some(&i), Some(seq @ 1..=2)) = (i, seq) {
            at[2 * i + seq as usize - 1] = now;
            seen += 1;
        }
    }
    if seen < events {
        bail!("the baseline consumer saw {seen} of {events} records");
    }
    Ok(at)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Produce at `rate` events/s for `duration` into a fresh topic that a running service (already
/// assigned every partition) consumes, and measure produced → POST arrival for every event.
pub async fn latency(bed: &Bed, rate: f64, duration: Duration) -> anyhow::Result<LatencyResult> {
    let run = format!("latency-{:08x}", rand::random::<u32>());
    let input = format!("bench-{run}-input");
    bed.create_topic(&input, PARTITIONS, false).await?;
    bed.service_topics(&run, PARTITIONS).await?;
    let sandbox = SandboxProc::start(
        &bed.keys_dir(),
        0,
        bed.verify_every,
        &bed.dir.path().join(format!("{run}.sandbox.log")),
    )
    .await?;
    let port = free_port()?;
    let config = bed.config_text(&run, &input, &sandbox.url, false, port);
    let mut svc = ServiceProc::start(bed.dir.path(), &run, &config, port, None)?;
    // Every partition assigned and restored before the first event is produced.
    svc.wait_until(
        "assignment of every partition",
        Duration::from_secs(90),
        |m| m.sum("catering_sync_assigned_partitions", &[]) >= PARTITIONS as f64,
    )
    .await
    .with_context(|| format!("run {run}"))?;
    svc.wait_ready(Duration::from_secs(90)).await?;
    let orders = ((rate * duration.as_secs_f64()) / 2.0).ceil().max(1.0) as usize;
    let stream = stream(orders);
    let events = stream.len();
    let values: Vec<(String, Vec<u8>, usize, usize)> = stream
        .into_iter()
        .map(|(i, which)| {
            let [create, pay] = order_events(i, DISHES);
            (order_no(i), if which == 0 { create } else { pay }, i, which)
        })
        .collect();
    // The broker hop alone, measured at the same time by a plain consumer.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let baseline = {
        let (client, topic) = (bed.client(), input.clone());
        let limit = duration + Duration::from_secs(120);
        tokio::task::spawn_blocking(move || {
            consume_arrivals(client, &topic, orders, events, limit, started_tx)
        })
    };
    started_rx
        .recv_timeout(Duration::from_secs(30))
        .context("the baseline consumer did not reach the end of every partition")?;
    // librdkafka's default linger (5 ms), as an ordering platform's producer would have.
    let p = producer(bed, 5)?;
    let (cpu_before, broker_before) = (svc.proc.cpu(), bed.broker.cpu());
    let topic = input.clone();
    // Paced production on its own thread: every millisecond, catch up with the schedule.
    let produced: Vec<u64> = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u64>> {
        let mut at = vec![0u64; 2 * orders];
        let started = Instant::now();
        for (n, (key, value, i, which)) in values.iter().enumerate() {
            let due = Duration::from_secs_f64(n as f64 / rate);
            let now = started.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
            at[2 * i + which] = now_us();
            send(&p, &topic, key, value)?;
            p.poll(Duration::ZERO);
        }
        flush(&p)?;
        Ok(at)
    })
    .await??;
    // Every event posted.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sandbox.accepted().await? < events as u64 {
        svc.proc.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "run {run}: {} of {events} posts arrived within 120 s (log: {})",
                sandbox.accepted().await?,
                svc.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (cpu, broker_cpu) = (
        svc.proc.cpu().saturating_sub(cpu_before),
        bed.broker.cpu().saturating_sub(broker_before),
    );
    let posts = super::stack::get_json(&format!("{}/__sandbox/posts", sandbox.url)).await?;
    let index: HashMap<String, usize> = (0..orders).map(|i| (order_no(i), i)).collect();
    let mut latencies = Vec::with_capacity(events);
    let mut posted_at = vec![0u64; 2 * orders];
    for (no, list) in posts["orders"].as_object().into_iter().flatten() {
        let Some(&i) = index.get(no) else { continue };
        for post in list.as_array().into_iter().flatten() {
            let which = match post["status"].as_str() {
                Some("CREATE_DEAL") => 0,
                Some("PAY_SUCCESS") => 1,
                _ => continue,
            };
            let arrived = post["received_at_us"].as_u64().unwrap_or(0);
            latencies.push(arrived.saturating_sub(produced[2 * i + which]));
            posted_at[2 * i + which] = arrived;
        }
    }
    let status = svc.proc.terminate(Duration::from_secs(60))?;
    if !status.success() {
        bail!("run {run}: the service exited with {status}");
    }
    if latencies.len() != events {
        bail!(
            "run {run}: {} posts matched {events} events",
            latencies.len()
        );
    }
    let consumed = baseline.await??;
    let mut hop: Vec<u64> = consumed
        .iter()
        .zip(&produced)
        .map(|(c, p)| c.saturating_sub(*p))
        .collect();
    // Per event: POST arrival − the plain consumer's receipt. Broker delays hit both and cancel;
    // what is left is the service's own time, give or take the two fetch cycles (≤ fetch wait).
    let mut added: Vec<u64> = posted_at
        .iter()
        .zip(&consumed)
        .map(|(a, c)| a.saturating_sub(*c))
        .collect();
    latencies.sort_unstable();
    hop.sort_unstable();
    added.sort_unstable();
    let q = |v: &[u64], f: f64| Duration::from_micros(v[((v.len() - 1) as f64 * f) as usize]);
    Ok(LatencyResult {
        broker: bed.broker.name(),
        rate,
        cpu,
        broker_cpu,
        events,
        p50: q(&latencies, 0.50),
        p99: q(&latencies, 0.99),
        max: q(&latencies, 1.0),
        broker_p50: q(&hop, 0.50),
        broker_p99: q(&hop, 0.99),
        added_p50: q(&added, 0.50),
        added_p99: q(&added, 0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_holds_every_event_once_and_each_pay_after_its_create() {
        for orders in [1, 5, 100, 101, 1000] {
            let s = stream(orders);
            assert_eq!(s.len(), 2 * orders);
            let mut seen = std::collections::HashSet::new();
            for (pos, e) in s.iter().enumerate() {
                assert!(seen.insert(*e), "{e:?} twice");
                if e.1 == 1 {
                    let create = s.iter().position(|x| *x == (e.0, 0)).unwrap();
                    assert!(create < pos, "pay of {} before its create", e.0);
                }
            }
        }
    }
}
