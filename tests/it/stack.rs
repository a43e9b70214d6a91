//! The whole service under test: a broker (tansu or MockCluster), the sandbox over HTTP, test
//! keys, fresh topic and group names, and `app::run` in-process or the `run` binary as a child.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use catering_sync::app::{self, AppError};
use catering_sync::config::Config;
use catering_sync::event::{decode, DecodeLimits};
use catering_sync::local::LocalConfig;
use catering_sync::sandbox::{Faults, SandboxConfig, SandboxHandle};
use catering_sync::snapshot::{Defaults, OrderState};
use catering_sync::telemetry::Health;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::broker::{unique, Broker, Outgoing};
use crate::harness::{keys, keys_dir};

/// Fresh names for one test.
#[derive(Debug, Clone)]
pub struct Names {
    pub input: String,
    pub changelog: String,
    pub dlq: String,
    pub group: String,
}

impl Names {
    pub fn fresh() -> Self {
        Self {
            input: unique("in"),
            changelog: unique("state"),
            dlq: unique("dlq"),
            group: unique("group"),
        }
    }
}

/// A configuration for tests: short timeouts, the `range` assignor (tansu), the sandbox.
/// `overrides` is a TOML table merged over it key by key (`"[retry]\nmax_attempts = 4"`).
pub fn config_text(bootstrap: &str, names: &Names, sandbox_url: &str, overrides: &str) -> String {
    LocalConfig::new(bootstrap, sandbox_url, &keys_dir(), keys())
        .names(&names.group, &names.input, &names.changelog, &names.dlq)
        .quick()
        .set("kafka.assignor", "range")
        .property("common", "broker.address.family", "v4")
        .property("consumer", "allow.auto.create.topics", "false")
        .set("wechatpay.request_timeout_ms", 2_000)
        .set("retry.initial_backoff_ms", 50)
        .set("retry.max_backoff_ms", 1_000)
        .set("retry.max_attempts", 10)
        .set("retry.breaker_threshold", 3)
        .set("retry.breaker_cooldown_ms", 500)
        .set("retry.config_fault_retry_ms", 500)
        .merge(overrides)
        .to_toml()
}

/// A service running in this process.
pub struct RunningApp {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
    pub health: Arc<Health>,
    pub http_addr: std::net::SocketAddr,
}

impl RunningApp {
    pub async fn start(config_text: &str) -> RunningApp {
        let config = Config::from_toml(config_text, std::iter::empty()).expect("test config");
        Self::start_config(config).await
    }

    /// Start with a configuration already loaded (from a file, [`Config::load`], so its keys
    /// are reloaded when the file changes).
    pub async fn start_config(config: Config) -> RunningApp {
        crate::harness::panics_past_capture();
        let (stop, stopped) = oneshot::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let task = tokio::spawn(app::run(
            config,
            async move {
                let _ = stopped.await;
            },
            move |r| {
                let _ = started_tx.send((r.health.clone(), r.http_addr));
            },
        ));
        let (health, http_addr) = started.await.expect("service started");
        RunningApp {
            stop: Some(stop),
            task,
            health,
            http_addr,
        }
    }

    /// SIGTERM-equivalent: drain, commit, leave.
    pub async fn stop(mut self) -> Result<(), AppError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("service task")
    }

    pub async fn readyz(&self) -> u16 {
        match reqwest::get(format!("http://{}/readyz", self.http_addr)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

/// The value of one series (`name{labels}`, exactly as exported) on the service's `/metrics`
/// (0 when absent).
pub async fn metric(app: &RunningApp, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every series of the family `name` on `/metrics`.
pub async fn metric_sum(app: &RunningApp, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Write `text` to `path` atomically (a rename, as a Kubernetes secret update swaps its files).
pub fn write_atomically(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A tansu broker with a fresh input topic of `partitions`, fresh names, and a sandbox.
pub async fn tansu_stack(
    partitions: i32,
    faults: Faults,
) -> (crate::broker::TestBroker, Names, SandboxHandle) {
    let broker = crate::broker::TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, partitions).await;
    (broker, names, sandbox_with(faults).await)
}

/// The setup most pipeline tests repeat, as one value: a tansu broker with a fresh input topic
/// of `partitions`, a sandbox with `faults`, `orders` generated orders produced interleaved
/// (a duplicate every `dup_every` records, 0 none), then the service in-process with `overrides`
/// merged over [`config_text`].
///
/// ```ignore
/// let s = Scenario::new("E2E", 500).partitions(4).dup_every(10).start().await;
/// assert!(s.delivered_and_committed(Duration::from_secs(120)).await);
/// ```
pub struct Scenario {
    tag: &'static str,
    orders: usize,
    partitions: i32,
    faults: Faults,
    dup_every: usize,
    overrides: String,
}

impl Scenario {
    /// `orders` orders tagged `tag`, over 2 partitions, no faults, no duplicates.
    pub fn new(tag: &'static str, orders: usize) -> Self {
        Self {
            tag,
            orders,
            partitions: 2,
            faults: Faults::default(),
            dup_every: 0,
            overrides: String::new(),
        }
    }

    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = n;
        self
    }

    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn dup_every(mut self, n: usize) -> Self {
        self.dup_every = n;
        self
    }

    /// A TOML table merged over the test configuration.
    pub fn config(mut self, overrides: &str) -> Self {
        self.overrides = overrides.into();
        self
    }

    /// Start the broker and the sandbox and produce the orders (the service is the test's).
    pub async fn produce(self) -> Produced {
        let (broker, names, sandbox) = tansu_stack(self.partitions, self.faults).await;
        let orders = gen_orders(self.tag, self.orders);
        let delivered = broker
            .produce_batch(&names.input, interleave(&orders, self.dup_every))
            .await;
        let ends = ends(&delivered);
        Produced {
            broker,
            names,
            sandbox,
            orders,
            delivered,
            ends,
            partitions: self.partitions,
            overrides: self.overrides,
        }
    }

    /// [`Scenario::produce`], then the service in-process.
    pub async fn start(self) -> Running {
        let p = self.produce().await;
        let app = RunningApp::start(&p.config()).await;
        Running {
            broker: p.broker,
            names: p.names,
            sandbox: p.sandbox,
            orders: p.orders,
            delivered: p.delivered,
            ends: p.ends,
            partitions: p.partitions,
            app,
        }
    }
}

/// A produced [`Scenario`]: everything but the service.
pub struct Produced {
    pub broker: crate::broker::TestBroker,
    pub names: Names,
    pub sandbox: SandboxHandle,
    pub orders: Vec<GenOrder>,
    /// Where each produced record landed (partition, offset), in production order.
    pub delivered: Vec<(i32, i64)>,
    /// End offset per partition of what was produced.
    pub ends: BTreeMap<i32, i64>,
    pub partitions: i32,
    overrides: String,
}

impl Produced {
    /// The test configuration for this scenario (its overrides merged).
    pub fn config(&self) -> String {
        config_text(
            &self.broker.bootstrap(),
            &self.names,
            &self.sandbox.base_url(),
            &self.overrides,
        )
    }
}

/// A started [`Scenario`].
pub struct Running {
    pub broker: crate::broker::TestBroker,
    pub names: Names,
    pub sandbox: SandboxHandle,
    pub orders: Vec<GenOrder>,
    /// Where each produced record landed (partition, offset), in production order.
    pub delivered: Vec<(i32, i64)>,
    /// End offset per partition of what was produced.
    pub ends: BTreeMap<i32, i64>,
    pub partitions: i32,
    pub app: RunningApp,
}

impl Running {
    /// [`delivered_and_committed`] for this scenario's orders and partitions.
    pub async fn delivered_and_committed(&self, limit: std::time::Duration) -> bool {
        delivered_and_committed(
            &self.broker,
            &self.names,
            &self.sandbox,
            &self.orders,
            &self.ends,
            self.partitions,
            limit,
        )
        .await
    }
}

pub async fn sandbox_with(faults: Faults) -> SandboxHandle {
    let mut config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    config.faults = faults;
    SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox")
}

/// One generated order: its events (as record values) in order.
#[derive(Debug, Clone)]
pub struct GenOrder {
    pub no: String,
    pub events: Vec<Vec<u8>>,
}

fn dish(i: usize, name: &str) -> Value {
    json!({"out_dish_no": format!("D{i}"), "name": name, "price": 1000 + 100 * i as i64, "unit": "BY_SHARE", "count": 1})
}

/// `n` orders: create (CREATE_DEAL with 2 dishes), an update (a third dish), payment; the order
/// number carries `tag` so tests do not collide.
pub fn gen_orders(tag: &str, n: usize) -> Vec<GenOrder> {
    (0..n)
        .map(|i| {
            let no = format!("{tag}{i:06}");
            let ev = |seq: u64, patch: Value| {
                json!({"event_id": format!("{no}-{seq}"), "out_order_no": no, "occurred_at": "2026-11-27T12:30:00+08:00", "seq": seq, "patch": patch})
                    .to_string()
                    .into_bytes()
            };
            let create = ev(1, json!({
                "sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
                "openid": format!("oUser{i:06}"), "out_shop_no": "SHOP-1", "login_token": format!("LT-SECRET-{i}"),
                "order_entry": "pages/menu/index", "total_amount": 2100, "discount_amount": 0, "user_amount": 2100,
                "status": "CREATE_DEAL", "dish_list": [dish(0, "宫保鸡丁"), dish(1, "米饭")]}));
            let update = ev(2, json!({"total_amount": 3300, "user_amount": 3300, "dish_list": [dish(0, "宫保鸡丁"), dish(1, "米饭"), dish(2, "酸梅汤")]}));
            let pay = ev(3, json!({"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:40:01+08:00",
                "transaction_id": format!("4200{i:010}"), "out_trade_no": format!("P{no}")}));
            GenOrder { no, events: vec![create, update, pay] }
        })
        .collect()
}

/// The expected final body of an order (the pure core applied to its events).
pub fn expected_body(order: &GenOrder) -> Value {
    let mut s = OrderState::default();
    for e in &order.events {
        s.apply(
            &decode(e, &DecodeLimits::default()).unwrap(),
            &Defaults::default(),
        );
    }
    serde_json::from_slice(&s.body().unwrap().bytes).unwrap()
}

/// Records for `orders`, interleaved across orders (each order's events stay in order), with a
/// duplicate delivery of every `dup_every`-th order's first event.
pub fn interleave(orders: &[GenOrder], dup_every: usize) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let max = orders.iter().map(|o| o.events.len()).max().unwrap_or(0);
    for round in 0..max {
        for (i, o) in orders.iter().enumerate() {
            if let Some(e) = o.events.get(round) {
                out.push(Outgoing::keyed(o.no.clone(), e.clone()));
                if round == 0 && dup_every > 0 && i % dup_every == 0 {
                    out.push(Outgoing::keyed(o.no.clone(), e.clone()));
                }
            }
        }
    }
    out
}

/// The order-history checker (`tests/chaos/history.rs`) on each order: every accepted body is the
/// snapshot of a prefix of the order's events and that prefix never shrinks, every status run
/// ends with its last snapshot accepted, and the final body is the full merge.
pub fn check_history(sandbox: &SandboxHandle, orders: &[GenOrder]) -> Result<(), String> {
    let mut violations = Vec::new();
    for o in orders {
        let posts: Vec<crate::history::Post> =
            sandbox.posts(&o.no).iter().map(Into::into).collect();
        crate::history::check_order(
            &o.no,
            &crate::history::expected(&o.events),
            &posts,
            &mut violations,
        );
    }
    match violations.first() {
        None => Ok(()),
        Some(v) => Err(format!(
            "{} history violations, the first: {v}",
            violations.len()
        )),
    }
}

/// Every order's statuses at the sandbox are in order (CREATE_DEAL… then PAY_SUCCESS…) and
/// complete, its last accepted body equals the expected merge, and its whole history passes the
/// order-history checker.
pub fn check_delivered(sandbox: &SandboxHandle, orders: &[GenOrder]) -> Result<(), String> {
    check_history(sandbox, orders)?;
    for o in orders {
        let posts = sandbox.posts(&o.no);
        let statuses: Vec<&str> = posts
            .iter()
            .map(|p| p.status.as_deref().unwrap_or("?"))
            .collect();
        let first_paid = statuses
            .iter()
            .position(|s| *s == "PAY_SUCCESS")
            .ok_or_else(|| format!("{}: never paid: {statuses:?}", o.no))?;
        if statuses.is_empty() || statuses[0] != "CREATE_DEAL" {
            return Err(format!(
                "{}: CREATE_DEAL not reported first: {statuses:?}",
                o.no
            ));
        }
        if statuses[first_paid..].iter().any(|s| *s != "PAY_SUCCESS") {
            return Err(format!("{}: status went back: {statuses:?}", o.no));
        }
        let last = posts.last().and_then(|p| p.body.clone()).ok_or("no body")?;
        if last != expected_body(o) {
            return Err(format!(
                "{}: final body differs from the expected merge",
                o.no
            ));
        }
    }
    Ok(())
}

/// Whether `group` committed every partition up to the end offsets in `ends`.
pub async fn all_committed<B: Broker>(
    broker: &B,
    names: &Names,
    ends: &BTreeMap<i32, i64>,
    partitions: i32,
) -> bool {
    let committed = broker
        .committed(&names.group, &names.input, partitions)
        .await;
    ends.iter().all(|(p, end)| {
        committed
            .get(p)
            .copied()
            .flatten()
            .is_some_and(|c| c >= *end)
    })
}

/// Wait (up to `limit`) until every order reached the sandbox as [`check_delivered`] requires and
/// the group committed every partition up to `ends`.
pub async fn delivered_and_committed<B: Broker>(
    broker: &B,
    names: &Names,
    sandbox: &SandboxHandle,
    orders: &[GenOrder],
    ends: &BTreeMap<i32, i64>,
    partitions: i32,
    limit: std::time::Duration,
) -> bool {
    crate::harness::eventually(limit, || async {
        check_delivered(sandbox, orders).is_ok()
            && all_committed(broker, names, ends, partitions).await
    })
    .await
}

/// End offset (last offset + 1) per partition of what was produced.
pub fn ends(delivered: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut m = BTreeMap::new();
    for (p, o) in delivered {
        let e = m.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    m
}

pub fn keys_path() -> PathBuf {
    keys_dir()
}

/// The service binary the child-process tests run: `$CATERING_SYNC_TEST_BIN` when set (to run a
/// defect's test against another build, e.g. the previous release), else this build's.
pub fn service_binary() -> PathBuf {
    std::env::var_os("CATERING_SYNC_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_catering-sync")))
}

/// The `run` binary as a child process.
pub struct ChildApp {
    child: std::process::Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChildApp {
    pub fn spawn(config_text: &str) -> ChildApp {
        Self::spawn_with_log_level(config_text, "info")
    }

    pub fn spawn_with_log_level(config_text: &str, level: &str) -> ChildApp {
        Self::spawn_with_env(config_text, level, &[])
    }

    /// With extra environment variables (e.g. the test-only crash hook).
    pub fn spawn_with_env(config_text: &str, level: &str, env: &[(&str, &str)]) -> ChildApp {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text).unwrap();
        let log = dir.path().join("service.log");
        let child = std::process::Command::new(service_binary())
            .args(["--log-format", "json", "run", "--config"])
            .arg(&config)
            .env("RUST_LOG", level)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        ChildApp {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sigterm(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
    }

    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for exit, up to `limit`.
    pub async fn wait_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which records a set of accepted posts covers: (partition, offset) → covered, for records made
/// by [`interleave`] with `dup_every` 0 (create, update, pay per order, round by round).
pub fn coverage(
    delivered: &[(i32, i64)],
    orders: &[GenOrder],
    sandbox: &SandboxHandle,
) -> Vec<((i32, i64), bool)> {
    let mut what = Vec::new();
    for round in 0..3 {
        for o in orders {
            what.push((o.no.clone(), round));
        }
    }
    delivered
        .iter()
        .zip(what)
        .map(|(coord, (no, idx))| {
            let covered = sandbox.posts(&no).iter().any(|post| {
                let body = post.body.as_ref().unwrap();
                match idx {
                    0 => true,
                    1 => body["dish_list"].as_array().map_or(0, Vec::len) == 3,
                    _ => body["status"] == "PAY_SUCCESS",
                }
            });
            (*coord, covered)
        })
        .collect()
}

/// Orders under load across a change (a key rotation, a certificate rotation, a migration):
/// half of `orders`' records produced to the 2-partition input, at least 100 posts accepted by
/// the sandbox, then `change` (its result is returned), then the other half; then whether every
/// order was delivered and committed within 120 s.
pub async fn across_a_change<B: Broker, T, Fut: std::future::Future<Output = T>>(
    broker: &B,
    names: &Names,
    sandbox: &SandboxHandle,
    orders: &[GenOrder],
    change: impl FnOnce() -> Fut,
) -> (bool, T) {
    let records = interleave(orders, 0);
    let (first, second) = records.split_at(records.len() / 2);
    let mut delivered = broker.produce_batch(&names.input, first.to_vec()).await;
    let under_way = crate::harness::eventually(std::time::Duration::from_secs(60), || async {
        sandbox.stats().accepted >= 100
    })
    .await;
    assert!(
        under_way,
        "posts under way before the change: {:?}",
        sandbox.stats()
    );
    let changed = change().await;
    delivered.extend(broker.produce_batch(&names.input, second.to_vec()).await);
    let done = delivered_and_committed(
        broker,
        names,
        sandbox,
        orders,
        &ends(&delivered),
        2,
        std::time::Duration::from_secs(120),
    )
    .await;
    (done, changed)
}
