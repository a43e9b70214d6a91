//! The broker a benchmark bed runs against: a tansu process ([`Tansu`]) or librdkafka's mock
//! cluster ([`MockCluster`]) in a process of its own ([`MockClusterProc`], started as the hidden
//! `catering-sync bench broker`), so that either broker's CPU is measured apart from the
//! service's and the benchmark's.
//!
//! Tansu stalls for hundreds of milliseconds at a time at half the maximum rate (README,
//! "Benchmarks", row 6), which hides what the service adds to the latency; the mock cluster keeps
//! its log in memory with no storage layer to pause and answers each request from one thread.
//!
//! `bench broker` speaks on its standard streams: its first stdout line is the bootstrap
//! servers; each stdin line `create TOPIC PARTITIONS` is answered by one stdout line, `ok` or
//! `error REASON`; end of input ends the process (so it never outlives the benchmark that holds
//! its stdin).
//!
//! What the mock cluster does differently from Kafka (librdkafka 2.12.1, `rdkafka_mock*.c`):
//!
//! - It has no CreateTopics handler (the request times out): topics are made through its API
//!   (`create`). Topic configurations (`cleanup.policy`) are ignored: it never compacts.
//! - Each partition keeps at most 5 MiB and 100,000 records; older segments are dropped.
//! - An empty fetch is answered when `fetch.wait.max.ms` expires, not when data arrives (as
//!   tansu does; Kafka answers at once).
//! - A new group's first join waits `group.initial.rebalance.delay.ms` (3 s by default).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::mocking::MockCluster;

use super::stack::{this_exe, Proc, Tansu};

/// Bytes the mock cluster keeps per partition before it drops the oldest segment.
pub const MOCK_PARTITION_BYTES: u64 = 5 * 1024 * 1024;

/// Which broker a bed starts.
#[derive(Debug, Clone, Copy)]
pub enum BrokerKind<'a> {
    /// A tansu process from this binary.
    Tansu(&'a Path),
    /// librdkafka's mock cluster in a `catering-sync bench broker` process.
    MockCluster,
}

/// A running broker process.
pub enum Broker {
    /// Tansu, in-memory storage.
    Tansu(Tansu),
    /// The mock cluster.
    MockCluster(MockClusterProc),
}

impl Broker {
    /// Start the broker `kind`, writing its standard error to `log`.
    pub fn start(kind: BrokerKind<'_>, log: &Path) -> anyhow::Result<Self> {
        Ok(match kind {
            BrokerKind::Tansu(binary) => Self::Tansu(Tansu::start(binary, log)?),
            BrokerKind::MockCluster => Self::MockCluster(MockClusterProc::start(log)?),
        })
    }

    /// `host:port` list for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        match self {
            Self::Tansu(t) => &t.bootstrap,
            Self::MockCluster(m) => &m.bootstrap,
        }
    }

    /// CPU time (user + system) the broker process has used so far.
    pub fn cpu(&self) -> Duration {
        match self {
            Self::Tansu(t) => t.proc.cpu(),
            Self::MockCluster(m) => m.proc.cpu(),
        }
    }

    /// Its name in the report.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tansu(_) => "tansu",
            Self::MockCluster(_) => "MockCluster",
        }
    }

    /// Whether this is the mock cluster.
    pub fn is_mock(&self) -> bool {
        matches!(self, Self::MockCluster(_))
    }
}

/// `catering-sync bench broker` as a child process.
pub struct MockClusterProc {
    /// The process.
    pub proc: Proc,
    /// `host:port` list for `bootstrap.servers`.
    pub bootstrap: String,
    /// Its stdin (commands) and stdout (answers), one exchange at a time.
    pipes: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl MockClusterProc {
    /// Start `bench broker` (one broker) and read its bootstrap servers.
    pub fn start(log: &Path) -> anyhow::Result<Self> {
        let mut proc = Proc::spawn(
            "bench broker",
            Command::new(this_exe()?)
                .args(["--log-format", "json", "bench", "broker"])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(log)?),
        )?;
        let (stdin, stdout) = proc.take_pipes();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            bail!("bench broker started without its pipes");
        };
        let mut stdout = BufReader::new(stdout);
        let bootstrap = read_reply(&mut stdout)
            .with_context(|| format!("bench broker did not start (log: {})", log.display()))?;
        if bootstrap.is_empty() || bootstrap.starts_with("error") {
            bail!("bench broker: {bootstrap:?} (log: {})", log.display());
        }
        Ok(Self {
            proc,
            bootstrap,
            pipes: Mutex::new((stdin, stdout)),
        })
    }

    /// Create `topic` with `partitions` partitions (replication 1), then wait until a metadata
    /// request sees every partition (blocking).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        let reply = {
            let mut pipes = self
                .pipes
                .lock()
                .map_err(|_| anyhow!("bench broker pipes poisoned"))?;
            let (stdin, stdout) = &mut *pipes;
            writeln!(stdin, "create {topic} {partitions}")
                .and_then(|()| stdin.flush())
                .context("writing to bench broker")?;
            read_reply(stdout).context("reading from bench broker")?
        };
        if reply != "ok" {
            bail!("creating topic {topic} on the mock cluster: {reply}");
        }
        self.wait_for_partitions(topic, partitions)
    }

    fn wait_for_partitions(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        use rdkafka::consumer::BaseConsumer;
        let probe: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("broker.address.family", "v4")
            .set("allow.auto.create.topics", "false")
            .create()?;
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        loop {
            let seen = crate::pipeline::kafka::partition_count(&probe, topic, limit)?;
            if seen == Some(partitions) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("topic {topic} has {seen:?} partitions, not {partitions}, after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn read_reply(from: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    if from.read_line(&mut line)? == 0 {
        bail!("bench broker closed its output");
    }
    Ok(line.trim_end().to_string())
}

/// One command of `bench broker`'s input.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `create TOPIC PARTITIONS`.
    Create { topic: String, partitions: i32 },
}

fn parse(line: &str) -> Result<Request, String> {
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["create", topic, partitions] => match partitions.parse::<i32>() {
            Ok(partitions) if partitions > 0 => Ok(Request::Create {
                topic: topic.to_string(),
                partitions,
            }),
            _ => Err(format!("bad partition count {partitions:?}")),
        },
        _ => Err(format!(
            "unknown command {line:?} (want `create TOPIC PARTITIONS`)"
        )),
    }
}

/// `catering-sync bench broker`: a mock cluster of `brokers` brokers in this process; its
/// bootstrap servers on the first line of `output`, then one answer per line of `input` until
/// `input` ends.
pub fn serve(brokers: i32, input: impl BufRead, mut output: impl Write) -> anyhow::Result<()> {
    let cluster = MockCluster::new(brokers).context("starting librdkafka's mock cluster")?;
    writeln!(output, "{}", cluster.bootstrap_servers())?;
    output.flush()?;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match parse(&line) {
            Ok(Request::Create { topic, partitions }) => {
                match cluster.create_topic(&topic, partitions, 1) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error {e}"),
                }
            }
            Err(e) => format!("error {e}"),
        };
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse("create bench-x 4"),
            Ok(Request::Create {
                topic: "bench-x".into(),
                partitions: 4
            })
        );
        assert!(parse("create bench-x 0").is_err());
        assert!(parse("create bench-x four").is_err());
        assert!(parse("delete bench-x").is_err());
    }

    #[test]
    fn serves_bootstrap_then_one_answer_per_command() {
        let input = b"create bench-a 2\n\nnonsense\n" as &[u8];
        let mut output = Vec::new();
        serve(1, input, &mut output).unwrap();
        let text = String::from_utf8(output).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains(':'), "bootstrap {}", lines[0]);
        assert_eq!(lines[1], "ok");
        assert!(
            lines[2].starts_with("error unknown command"),
            "{}",
            lines[2]
        );
    }
}
