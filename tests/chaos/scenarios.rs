//! The five fault-injection scenarios and the run they share: a broker, fresh topics and group,
//! the sandbox over real HTTP, the `run` binary as child processes, a seeded stream produced while
//! faults are injected, a wait (a condition) until every order is delivered and committed, then the
//! order-history checker.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use catering_sync::dead_letter::header as dlq_header;
use catering_sync::sandbox::{Faults, SandboxHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::broker::{Broker, MockBroker, Outgoing, TestBroker};
use crate::gen::{self, Spec, Stream};
use crate::history::{self, DeadLetter, Input, OrderRecords, Post, Report};
use crate::procs::{Logs, Service};
use crate::stack::{config_text, sandbox_with, Names};

// ---------------------------------------------------------------------------------------------
// Profiles and seeds.

/// `CHAOS_PROFILE=short` (default) or `full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Short,
    Full,
}

impl Profile {
    pub fn from_env() -> Profile {
        match std::env::var("CHAOS_PROFILE").as_deref() {
            Ok("full") => Profile::Full,
            Ok("short") | Err(_) => Profile::Short,
            Ok(other) => panic!("CHAOS_PROFILE={other:?}: expected short or full"),
        }
    }

    fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Profile::Short => short,
            Profile::Full => full,
        }
    }

    fn name(self) -> &'static str {
        self.pick("short", "full")
    }
}

/// `CHAOS_SEED`, or one random seed for the whole test process.
pub fn base_seed() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| match std::env::var("CHAOS_SEED") {
        Ok(s) => s.parse().expect("CHAOS_SEED is a u64"),
        Err(_) => rand::random(),
    })
}

/// The scenario's seed: the base seed mixed with its name (the stream and the fault schedule
/// follow from it; the moments faults land relative to the service's progress do not).
fn seed(scenario: &str) -> u64 {
    let mix = scenario.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    println!("chaos {scenario}: CHAOS_SEED={}", base_seed());
    base_seed() ^ mix
}

// ---------------------------------------------------------------------------------------------
// A broker the background producer can use from a spawned task.

struct Bootstrap(String);

impl Broker for Bootstrap {
    fn bootstrap(&self) -> String {
        self.0.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// One scenario's run.

/// Records with the (partition, offset) each was delivered to.
pub type Produced = Vec<(Outgoing, (i32, i64))>;

/// An order's records: where each landed and its value.
type Placed = Vec<((i32, i64), Vec<u8>)>;

pub struct Run<B: Broker> {
    pub scenario: String,
    pub profile: Profile,
    pub broker: B,
    pub names: Names,
    pub partitions: i32,
    pub sandbox: SandboxHandle,
    pub logs: Logs,
    pub config: String,
    pub services: Vec<Service>,
    /// Processes that were sent SIGTERM and may still be draining.
    pub leaving: Vec<Service>,
    spawned: usize,
    /// Every record produced, with its (partition, offset).
    pub produced: Produced,
    feeder: Option<tokio::task::JoinHandle<Produced>>,
    pub started: Instant,
    /// Fault timeline.
    pub timeline: Vec<String>,
    pub rng: StdRng,
    pub seed: u64,
}

impl Run<TestBroker> {
    /// A tansu broker with a fresh input topic of `partitions` partitions (the service creates
    /// the changelog and the DLQ), and the sandbox with `faults`.
    pub async fn tansu(scenario: &str, profile: Profile, partitions: i32, faults: Faults) -> Self {
        let broker = TestBroker::start();
        let names = Names::fresh();
        broker.create_topic(&names.input, partitions).await;
        Run::new(scenario, profile, broker, names, partitions, faults).await
    }
}

impl Run<MockBroker> {
    /// librdkafka's MockCluster (3 brokers) with the three topics made on the cluster.
    pub async fn mock(scenario: &str, profile: Profile, partitions: i32, faults: Faults) -> Self {
        let broker = MockBroker::start(3);
        let names = Names::fresh();
        for topic in [
            names.input.clone(),
            names.changelog.clone(),
            names.dlq.clone(),
        ] {
            broker
                .with_cluster(move |c| c.create_topic(&topic, partitions, 1))
                .expect("mock topic");
        }
        Run::new(scenario, profile, broker, names, partitions, faults).await
    }
}

impl<B: Broker> Run<B> {
    async fn new(
        scenario: &str,
        profile: Profile,
        broker: B,
        names: Names,
        partitions: i32,
        faults: Faults,
    ) -> Self {
        let sandbox = sandbox_with(faults).await;
        let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
        let seed = seed(scenario);
        let mut run = Run {
            scenario: scenario.into(),
            profile,
            broker,
            names,
            partitions,
            sandbox,
            logs: Logs::new(scenario),
            config,
            services: Vec::new(),
            leaving: Vec::new(),
            spawned: 0,
            produced: Vec::new(),
            feeder: None,
            started: Instant::now(),
            timeline: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            seed,
        };
        // `CHAOS_RDKAFKA_DEBUG=cgrp` (say) turns on librdkafka's debug contexts in every member
        // (see them with `CHAOS_RUST_LOG=info,librdkafka=debug CHAOS_KEEP_LOGS=1`).
        if let Ok(d) = std::env::var("CHAOS_RDKAFKA_DEBUG") {
            run.set_config("kafka.common", "debug", &format!("\"{d}\""));
        }
        run
    }

    /// Seconds since the run started, for the timeline.
    pub fn t(&self) -> String {
        format!("{:.1}s", self.started.elapsed().as_secs_f64())
    }

    pub fn note(&mut self, what: impl AsRef<str>) {
        let line = format!(
            "[{} {} posts] {}",
            self.t(),
            self.sandbox.stats().accepted,
            what.as_ref()
        );
        println!("chaos {}: {line}", self.scenario);
        self.timeline.push(line);
    }

    /// Sets `key = value` in the config's `[table]` (the key must not be there yet, or is
    /// replaced when it is).
    pub fn set_config(&mut self, table: &str, key: &str, value: &str) {
        let mut out = String::new();
        let mut in_table = false;
        let mut done = false;
        for line in self.config.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('[') {
                if in_table && !done {
                    let _ = writeln!(out, "{key} = {value}");
                    done = true;
                }
                in_table = trimmed == format!("[{table}]");
            }
            if in_table && trimmed.split('=').next().map(str::trim) == Some(key) {
                let _ = writeln!(out, "{key} = {value}");
                done = true;
                continue;
            }
            let _ = writeln!(out, "{line}");
        }
        if !done {
            if !in_table {
                let _ = writeln!(out, "[{table}]");
            }
            let _ = writeln!(out, "{key} = {value}");
        }
        self.config = out;
    }

    /// Starts a service process; returns its index in `services`.
    pub fn spawn(&mut self, env: &[(&str, String)]) -> usize {
        self.spawned += 1;
        let name = format!("c{}", self.spawned);
        let s = Service::spawn(&self.logs, &name, &self.config, env);
        let extra = if env.is_empty() {
            String::new()
        } else {
            format!(" with {env:?}")
        };
        self.note(format!("start {name} (pid {}){extra}", s.pid()));
        self.services.push(s);
        self.services.len() - 1
    }

    /// SIGKILL service `i` and forget it.
    pub fn sigkill(&mut self, i: usize) {
        let mut s = self.services.remove(i);
        s.kill();
        self.note(format!(
            "SIGKILL {} (up {:.1}s)",
            s.name,
            s.started.elapsed().as_secs_f64()
        ));
    }

    /// SIGTERM service `i`; it keeps draining among `leaving`.
    pub fn sigterm(&mut self, i: usize) {
        let s = self.services.remove(i);
        s.term();
        self.note(format!(
            "SIGTERM {} (up {:.1}s)",
            s.name,
            s.started.elapsed().as_secs_f64()
        ));
        self.leaving.push(s);
    }

    /// Restarts every service that exited on its own; notes how processes sent SIGTERM ended.
    pub fn revive(&mut self) {
        let mut notes = Vec::new();
        let mut restart = 0;
        self.services.retain_mut(|s| match s.exited() {
            Some(status) => {
                notes.push(format!(
                    "{} exited by itself ({status}): restarting",
                    s.name
                ));
                restart += 1;
                false
            }
            None => true,
        });
        self.leaving.retain_mut(|s| match s.exited() {
            Some(status) => {
                notes.push(format!(
                    "{} exited after SIGTERM ({status}, {:.1}s after start)",
                    s.name,
                    s.started.elapsed().as_secs_f64()
                ));
                false
            }
            None => true,
        });
        for n in notes {
            self.note(n);
        }
        for _ in 0..restart {
            self.spawn(&[]);
        }
    }

    /// Produces `records` now (waits for every delivery).
    pub async fn produce(&mut self, records: Vec<Outgoing>) {
        let delivered = self
            .broker
            .produce_batch(&self.names.input, records.clone())
            .await;
        self.produced.extend(records.into_iter().zip(delivered));
    }

    /// Produces `chunks` in the background, one every `gap`.
    pub fn feed(&mut self, chunks: Vec<Vec<Outgoing>>, gap: Duration) {
        assert!(self.feeder.is_none(), "one feeder at a time");
        let broker = Bootstrap(self.broker.bootstrap());
        let topic = self.names.input.clone();
        self.feeder = Some(tokio::spawn(async move {
            let mut out = Vec::new();
            for chunk in chunks {
                let delivered = broker.produce_batch(&topic, chunk.clone()).await;
                out.extend(chunk.into_iter().zip(delivered));
                tokio::time::sleep(gap).await;
            }
            out
        }));
    }

    /// Whether the background producer finished.
    pub fn fed(&self) -> bool {
        self.feeder.as_ref().is_none_or(|f| f.is_finished())
    }

    async fn join_feeder(&mut self) {
        if let Some(f) = self.feeder.take() {
            let out = f.await.expect("feeder");
            self.produced.extend(out);
        }
    }

    /// Waits until `f(accepted posts)` holds, up to `limit`, reviving exited services.
    pub async fn until_accepted(&mut self, limit: Duration, n: u64) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.sandbox.stats().accepted >= n {
                return true;
            }
            self.revive();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Sleeps `d` (to space faults), reviving exited services meanwhile.
    pub async fn pause(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.revive();
            tokio::time::sleep(Duration::from_millis(100).min(end - Instant::now())).await;
        }
    }

    /// The checker's orders: records grouped by key, in partition offset order; unkeyed values.
    fn orders(&self) -> (Vec<OrderRecords>, Vec<Vec<u8>>) {
        let mut by_key: BTreeMap<Vec<u8>, Placed> = BTreeMap::new();
        let mut unkeyed = Vec::new();
        for (r, at) in &self.produced {
            let value = r.value.clone().unwrap_or_default();
            match &r.key {
                Some(k) => by_key.entry(k.clone()).or_default().push((*at, value)),
                None => unkeyed.push(value),
            }
        }
        let orders = by_key
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|(at, _)| *at);
                OrderRecords {
                    no: String::from_utf8(k).expect("UTF-8 key"),
                    values: v.into_iter().map(|(_, v)| v).collect(),
                }
            })
            .collect();
        (orders, unkeyed)
    }

    fn ends(&self) -> BTreeMap<i32, i64> {
        let mut m = BTreeMap::new();
        for (_, (p, o)) in &self.produced {
            let e = m.entry(*p).or_insert(0);
            *e = (*e).max(o + 1);
        }
        m
    }

    /// Waits until every order's last accepted body is its full merge and the group committed
    /// every partition to its end — or, once everything is committed, nothing new was accepted for
    /// `quiet` (a stale last body never changes) — or `limit` passes. Returns whether all was
    /// delivered and committed.
    pub async fn wait_done(&mut self, limit: Duration) -> bool {
        self.join_feeder().await;
        let (orders, _) = self.orders();
        let finals: Vec<(String, Option<Value>)> = orders
            .iter()
            .map(|o| {
                (
                    o.no.clone(),
                    history::expected(&o.values).prefixes.pop().flatten(),
                )
            })
            .collect();
        let ends = self.ends();
        let quiet = Duration::from_secs(10);
        let deadline = Instant::now() + limit;
        let mut last_accepted = (self.sandbox.stats().accepted, Instant::now());
        let mut last_progress = Instant::now();
        // A stall (no post accepted, no commit moved) this long ends the wait: a liveness failure
        // shows as undelivered orders and uncommitted partitions instead of a long timeout.
        let stall = Duration::from_secs(self.profile.pick(30, 60));
        let mut last_change: (Option<BTreeMap<i32, Option<i64>>>, Instant) = (None, Instant::now());
        loop {
            self.revive();
            let committed = self
                .broker
                .committed(&self.names.group, &self.names.input, self.partitions)
                .await;
            let all_committed = ends
                .iter()
                .all(|(p, e)| committed.get(p).copied().flatten().is_some_and(|c| c >= *e));
            let undelivered = finals
                .iter()
                .filter(|(no, f)| {
                    f.is_some()
                        && self.sandbox.posts(no).last().and_then(|p| p.body.as_ref()) != f.as_ref()
                })
                .count();
            let accepted = self.sandbox.stats().accepted;
            if accepted != last_accepted.0 {
                last_accepted = (accepted, Instant::now());
            }
            if undelivered == 0 && all_committed {
                self.note(format!(
                    "delivered and committed ({accepted} posts accepted)"
                ));
                return true;
            }
            if last_change.0.as_ref() != Some(&committed) {
                last_change = (Some(committed.clone()), Instant::now());
            }
            let idle = last_accepted.1.elapsed().min(last_change.1.elapsed());
            if !all_committed && idle > stall {
                self.note(format!(
                    "stalled: no post accepted and no commit moved for {stall:?}; {undelivered} orders undelivered, committed {committed:?} of ends {ends:?}"
                ));
                return false;
            }
            if all_committed && last_accepted.1.elapsed() > quiet {
                self.note(format!(
                    "all committed, {undelivered} orders' last body is not the full merge, nothing accepted for {quiet:?}: stop waiting"
                ));
                return false;
            }
            if Instant::now() > deadline {
                self.note(format!(
                    "timeout: {undelivered} orders undelivered, committed {committed:?} of ends {ends:?}"
                ));
                return false;
            }
            if last_progress.elapsed() > Duration::from_secs(10) {
                last_progress = Instant::now();
                println!(
                    "chaos {}: [{}] waiting: {accepted} accepted, {undelivered} orders undelivered, committed {:?} / ends {ends:?}",
                    self.scenario,
                    self.t(),
                    committed.values().collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs the checker over what was produced, accepted, dead-lettered and committed.
    pub async fn check(&mut self) -> Report {
        let (orders, unkeyed) = self.orders();
        let posts: HashMap<String, Vec<Post>> = orders
            .iter()
            .map(|o| {
                (
                    o.no.clone(),
                    self.sandbox.posts(&o.no).iter().map(Post::from).collect(),
                )
            })
            .collect();
        let dead_letters = if self.broker.partition_count(&self.names.dlq).await.is_some() {
            self.broker
                .read_all(&self.names.dlq)
                .await
                .into_iter()
                .map(|r| DeadLetter {
                    reason: r
                        .headers
                        .iter()
                        .find(|(k, _)| k == dlq_header::REASON)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned()),
                    key: r.key,
                    value: r.value,
                })
                .collect()
        } else {
            Vec::new()
        };
        let committed = self
            .broker
            .committed(&self.names.group, &self.names.input, self.partitions)
            .await;
        let input = Input {
            orders,
            unkeyed,
            posts,
            dead_letters,
            ends: self.ends(),
            committed,
        };
        history::check(&input)
    }

    /// Prints the report (and appends it to `$CHAOS_REPORT`), stops every service, and fails
    /// the test — with the log directory kept and each log's tail printed — unless it is clean.
    pub async fn finish(mut self, reports: Vec<(String, Report)>) {
        let elapsed = self.started.elapsed();
        let mut text = String::new();
        for (name, r) in &reports {
            let _ = writeln!(text, "{}", r.line(name));
            if !r.clean() {
                text.push_str(&r.details(10));
            }
        }
        let _ = writeln!(
            text,
            "chaos {}: profile {}, CHAOS_SEED={}, {:.0} s, sandbox {:?}",
            self.scenario,
            self.profile.name(),
            base_seed(),
            elapsed.as_secs_f64(),
            self.sandbox.stats().responses_by_status
        );
        for t in &self.timeline {
            let _ = writeln!(text, "    {t}");
        }
        println!("{text}");
        if let Ok(path) = std::env::var("CHAOS_REPORT") {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{text}");
            }
        }
        for s in &mut self.services {
            s.term();
        }
        for s in self.services.iter_mut().chain(self.leaving.iter_mut()) {
            if s.wait_exit(Duration::from_secs(12)).await.is_none() {
                s.kill();
            }
        }
        let clean = reports.iter().all(|(_, r)| r.clean());
        if !clean {
            self.logs.keep();
            eprintln!("{}", self.logs.tails(15));
        }
        let summary: Vec<String> = reports.iter().map(|(n, r)| r.line(n)).collect();
        drop(self.services);
        drop(self.leaving);
        self.sandbox.shutdown().await;
        assert!(
            clean,
            "violations (0 expected, 0 missing orders, 0 spurious dead letters):\n{}",
            summary.join("\n")
        );
    }
}

fn stream(tag: &str, orders: usize, seed: u64) -> Stream {
    let s = gen::generate(&Spec::new(tag, orders, seed));
    println!("chaos stream {tag}: {}", s.summary());
    s
}

fn secs(r: &mut StdRng, lo: f64, hi: f64) -> Duration {
    Duration::from_secs_f64(r.gen_range(lo..hi))
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL the single consumer ≥ 5 times at random (seeded) moments while events keep coming.

pub async fn sigkill(profile: Profile) {
    let faults = Faults {
        latency_ms: 20,
        jitter_ms: 20,
        ..Faults::default()
    };
    let mut run = Run::tansu("sigkill", profile, 6, faults).await;
    let (orders, kills) = profile.pick((700, 5), (2500, 8));
    let s = stream("SK", orders, run.seed);
    // Spread over the kills (a cycle takes ~10 s: the dead member holds the group until its
    // session times out): a backlog builds up while the consumer is down, so the restarted one
    // catches up with several events per order queued (coalesced posts).
    let mut chunks = s.chunks(kills * 3 + 3);
    let first = chunks.remove(0);
    run.produce(first).await;
    run.feed(chunks, Duration::from_secs(3));
    run.spawn(&[]);
    for k in 0..kills {
        // Work is under way since the (re)start: some posts, then a random moment.
        let target = run.sandbox.stats().accepted + run.rng.gen_range(10..200);
        if !run.until_accepted(Duration::from_secs(30), target).await {
            run.note("no progress within 30 s of the (re)start");
        }
        let d = secs(&mut run.rng, 0.0, 1.5);
        run.pause(d).await;
        let accepted = run.sandbox.stats().accepted;
        run.sigkill(0);
        run.note(format!(
            "kill {} of {kills} ({accepted} posts accepted so far)",
            k + 1
        ));
        run.spawn(&[]);
    }
    let done = run
        .wait_done(Duration::from_secs(profile.pick(120, 300)))
        .await;
    let report = run.check().await;
    run.note(format!("delivered and committed: {done}"));
    run.finish(vec![("sigkill".into(), report)]).await;
}

// ---------------------------------------------------------------------------------------------
// 2. Three consumers, the sandbox slow (2 s), max_in_flight 4: permits saturated, drains reach
//    their bound; one member is killed (SIGKILL, or SIGTERM for some) and another started every
//    ~8 s a few times. On MockCluster (eager `range`): tansu 0.6 wedges a group for good when its
//    leader leaves mid-rebalance (see the README's delivery "Known limits");
//    `CHAOS_SLOW_REBALANCE_BROKER=tansu` runs it there.

pub async fn slow_rebalance(profile: Profile) {
    let name = "slow_rebalance";
    if std::env::var("CHAOS_SLOW_REBALANCE_BROKER").as_deref() == Ok("tansu") {
        slow_rebalance_on(
            Run::tansu(name, profile, 6, Faults::default()).await,
            profile,
        )
        .await
    } else {
        slow_rebalance_on(
            Run::mock(name, profile, 6, Faults::default()).await,
            profile,
        )
        .await
    }
}

async fn slow_rebalance_on<B: Broker>(mut run: Run<B>, profile: Profile) {
    let slow = Faults {
        latency_ms: 2000,
        jitter_ms: 200,
        ..Faults::default()
    };
    run.set_config("pipeline", "max_in_flight", "4");
    run.set_config("wechatpay", "request_timeout_ms", "3000");
    let (orders, changes) = profile.pick((500, 3), (2000, 6));
    let s = stream("SR", orders, run.seed);
    // A backlog first, the rest while members change.
    let mut chunks = s.chunks(8);
    let first: Vec<Outgoing> = chunks.drain(..2).flatten().collect();
    run.produce(first).await;
    run.sandbox.set_faults(slow.clone());
    run.note("sandbox latency 2000 ms (+0..200 ms), max_in_flight 4, request timeout 3 s, drain bound 5 s");
    for _ in 0..3 {
        run.spawn(&[]);
    }
    run.feed(chunks, Duration::from_secs(3));
    if !run.until_accepted(Duration::from_secs(60), 12).await {
        run.note("no progress within 60 s");
    }
    for c in 0..changes {
        let d = secs(&mut run.rng, 7.0, 9.0);
        run.pause(d).await;
        let victim = run.rng.gen_range(0..run.services.len());
        if c % 2 == 1 {
            run.sigterm(victim);
        } else {
            run.sigkill(victim);
        }
        run.spawn(&[]);
    }
    // Still slow while the group settles after the last change: old owners' stragglers and the
    // new owners post side by side.
    run.pause(Duration::from_secs(20)).await;
    run.sandbox.set_faults(Faults::default());
    run.note("sandbox fast again: finish");
    let done = run
        .wait_done(Duration::from_secs(profile.pick(120, 300)))
        .await;
    let report = run.check().await;
    run.note(format!("delivered and committed: {done}"));
    run.finish(vec![("slow_rebalance".into(), report)]).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Two consumers; one is SIGSTOPped ~12 s (past its 6 s session timeout), then SIGCONT. It may
//    exit by itself afterwards (a fixed service exits when it finds it was suspended past its
//    lease): it is restarted then.

pub async fn sigstop(profile: Profile) {
    let faults = Faults {
        latency_ms: 200,
        jitter_ms: 100,
        ..Faults::default()
    };
    let mut run = Run::tansu("sigstop", profile, 6, faults).await;
    run.set_config("pipeline", "max_in_flight", "8");
    let (orders, stops) = profile.pick((600, 2), (2000, 4));
    let s = stream("SS", orders, run.seed);
    // One producer, in sequence with the faults: a chunk a second (each order's records keep
    // their order), one right before each SIGSTOP so the stopped member has work queued.
    let mut chunks: std::collections::VecDeque<Vec<Outgoing>> = s.chunks(stops * 21 + 4).into();
    for _ in 0..2 {
        let c = chunks.pop_front().unwrap();
        run.produce(c).await;
    }
    run.note("sandbox latency 200 ms (+0..100 ms), max_in_flight 8");
    run.spawn(&[]);
    run.spawn(&[]);
    if !run.until_accepted(Duration::from_secs(30), 50).await {
        run.note("no progress within 30 s");
    }
    for k in 0..stops {
        for _ in 0..2 {
            if let Some(c) = chunks.pop_front() {
                run.produce(c).await;
            }
            run.pause(Duration::from_secs(1)).await;
        }
        if let Some(c) = chunks.pop_front() {
            run.produce(c).await;
        }
        let d = secs(&mut run.rng, 0.05, 0.4);
        run.pause(d).await;
        let i = run.rng.gen_range(0..run.services.len());
        let name = run.services[i].name.clone();
        run.services[i].stop();
        run.note(format!("SIGSTOP {name} ({} of {stops})", k + 1));
        let stopped = Instant::now();
        let length = secs(&mut run.rng, 11.5, 13.0);
        while stopped.elapsed() < length {
            if let Some(c) = chunks.pop_front() {
                run.produce(c).await;
            }
            let left = length
                .saturating_sub(stopped.elapsed())
                .min(Duration::from_secs(1));
            run.pause(left).await;
        }
        if let Some(s) = run.services.iter().find(|s| s.name == name) {
            s.cont();
        }
        run.note(format!(
            "SIGCONT {name} (stopped {:.1}s)",
            stopped.elapsed().as_secs_f64()
        ));
        // Let it notice (and maybe exit: revive() restarts it then).
        for _ in 0..6 {
            if let Some(c) = chunks.pop_front() {
                run.produce(c).await;
            }
            run.pause(Duration::from_secs(1)).await;
        }
    }
    let rest: Vec<Outgoing> = chunks.into_iter().flatten().collect();
    if !rest.is_empty() {
        run.produce(rest).await;
    }
    run.sandbox.set_faults(Faults::default());
    run.note("sandbox fast again: finish");
    let done = run
        .wait_done(Duration::from_secs(profile.pick(120, 300)))
        .await;
    let report = run.check().await;
    run.note(format!("delivered and committed: {done}"));
    run.finish(vec![("sigstop".into(), report)]).await;
}

// ---------------------------------------------------------------------------------------------
// 4. A crash at each point of an order's step, through the binary's hook
//    `CATERING_SYNC_CRASH_AT=<point>:<n>` (abort the n-th time the point is reached):
//    before_post (write-ahead record acknowledged, request not sent), after_ack (204 verified,
//    acknowledged digest not yet written), before_commit (everything written, offset not yet
//    committed). A binary without the hook is SIGKILLed after a while instead. Then a restart
//    without the hook finishes the run. The three points run side by side on one broker.

pub const CRASH_POINTS: [&str; 3] = ["before_post", "after_ack", "before_commit"];

async fn crash_point(profile: Profile, broker: &TestBroker, point: &'static str) -> Run<Bootstrap> {
    let names = Names::fresh();
    broker.create_topic(&names.input, 4).await;
    let faults = Faults {
        latency_ms: 10,
        jitter_ms: 20,
        ..Faults::default()
    };
    let scenario = format!("crash_points/{point}");
    let mut run = Run::new(
        &scenario,
        profile,
        Bootstrap(broker.bootstrap()),
        names,
        4,
        faults,
    )
    .await;
    let orders = profile.pick(250, 2000);
    let tag = match point {
        "before_post" => "CP",
        "after_ack" => "CA",
        _ => "CC",
    };
    let s = stream(tag, orders, run.seed);
    // One producer in sequence with the fault: a chunk a second while the hooked process runs;
    // if it has not died by `limit`, a burst of three chunks and a SIGKILL right after it (a
    // backlog with several events per order queued: coalesced posts in flight).
    let mut chunks: std::collections::VecDeque<Vec<Outgoing>> =
        s.chunks(profile.pick(20, 30)).into();
    for _ in 0..2 {
        let c = chunks.pop_front().unwrap();
        run.produce(c).await;
    }
    let n = run.rng.gen_range(40..160);
    run.spawn(&[("CATERING_SYNC_CRASH_AT", format!("{point}:{n}"))]);
    let limit = Duration::from_secs(profile.pick(12, 20));
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = run.services[0].exited() {
            let name = run.services.remove(0).name.clone();
            run.note(format!("{name} died at the hook {point}:{n}: {status}"));
            break;
        }
        if Instant::now() > deadline {
            let burst: Vec<Outgoing> = (0..3)
                .filter_map(|_| chunks.pop_front())
                .flatten()
                .collect();
            run.produce(burst).await;
            let d = secs(&mut run.rng, 0.1, 0.4);
            run.pause(d).await;
            run.note(format!(
                "the binary did not honour {point}:{n} within {limit:?}: SIGKILL after a burst"
            ));
            run.sigkill(0);
            break;
        }
        if let Some(c) = chunks.pop_front() {
            run.produce(c).await;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    run.spawn(&[]);
    let rest: Vec<Outgoing> = chunks.into_iter().flatten().collect();
    if !rest.is_empty() {
        run.produce(rest).await;
    }
    run
}

pub async fn crash_points(profile: Profile) {
    let broker = TestBroker::start();
    let runs = futures_join3(
        crash_point(profile, &broker, CRASH_POINTS[0]),
        crash_point(profile, &broker, CRASH_POINTS[1]),
        crash_point(profile, &broker, CRASH_POINTS[2]),
    )
    .await;
    let mut reports = Vec::new();
    let mut finished = Vec::new();
    let (a, b, c) = runs;
    for mut run in [a, b, c] {
        let done = run
            .wait_done(Duration::from_secs(profile.pick(90, 240)))
            .await;
        run.note(format!("delivered and committed: {done}"));
        let report = run.check().await;
        reports.push((run.scenario.clone(), report));
        finished.push(run);
    }
    // One verdict for the three: each run prints its own report; the first failing one fails.
    let mut failed = Vec::new();
    for (run, (name, report)) in finished.into_iter().zip(reports) {
        let clean = report.clean();
        let line = report.line(&name);
        let r = tokio::spawn(async move { run.finish(vec![(name, report)]).await });
        // finish() asserts; collect instead of stopping at the first.
        if r.await.is_err() || !clean {
            failed.push(line);
        }
    }
    drop(broker);
    assert!(
        failed.is_empty(),
        "crash points with violations:\n{}",
        failed.join("\n")
    );
}

async fn futures_join3<A, B, C>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
    c: impl std::future::Future<Output = C>,
) -> (A, B, C) {
    tokio::join!(a, b, c)
}

// ---------------------------------------------------------------------------------------------
// 5. Cooperative-sticky on MockCluster: 3–4 members joining and leaving (SIGTERM and SIGKILL)
//    under load.

pub async fn cooperative(profile: Profile) {
    let faults = Faults {
        latency_ms: 50,
        jitter_ms: 50,
        ..Faults::default()
    };
    let mut run = Run::mock("cooperative", profile, 6, faults).await;
    run.set_config("kafka", "assignor", "\"cooperative-sticky\"");
    let (orders, changes) = profile.pick((600, 5), (2000, 10));
    let s = stream("CO", orders, run.seed);
    let mut chunks = s.chunks(profile.pick(20, 40));
    let first = chunks.remove(0);
    run.produce(first).await;
    run.feed(chunks, Duration::from_millis(1500));
    for _ in 0..3 {
        run.spawn(&[]);
    }
    if !run.until_accepted(Duration::from_secs(60), 50).await {
        run.note("no progress within 60 s");
    }
    for c in 0..changes {
        let d = secs(&mut run.rng, 3.0, 6.0);
        run.pause(d).await;
        // Between 3 and 4 members: join when 3, leave when 4 (alternating SIGTERM and SIGKILL).
        if run.services.len() <= 3 && c % 3 != 2 {
            run.spawn(&[]);
        } else {
            let victim = run.rng.gen_range(0..run.services.len());
            if c % 2 == 0 {
                run.sigterm(victim);
            } else {
                run.sigkill(victim);
            }
            if run.services.len() < 3 {
                run.spawn(&[]);
            }
        }
    }
    let done = run
        .wait_done(Duration::from_secs(profile.pick(120, 300)))
        .await;
    let report = run.check().await;
    run.note(format!("delivered and committed: {done}"));
    run.finish(vec![("cooperative".into(), report)]).await;
}
