//! One assigned partition: fence and restore its state, then take its records in offset order,
//! run the events of different orders concurrently and those of one order strictly in sequence,
//! track which offsets are done, and ask for commits.
//!
//! On stop (revocation or shutdown): dispatch nothing more; retries and permit waits end at once;
//! requests already on the wire get the drain bound to answer. At the bound every task of the
//! partition is aborted; its writes get what is left of the bound to be answered (the producer's
//! timeouts are derived from it). The worker then reports the
//! committable offset and whether the drain was *quiet*: no request of the partition was on the
//! wire and no write of it could still land. A drain that was not quiet makes the process exit
//! (crash-only) rather than overlap with the next owner.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::kafka::InRecord;
use super::offsets::OffsetTracker;
use super::order::{self, Job, OrderDone};
use super::Shared;
use crate::clock::{Cancel, Instant};
use crate::dead_letter::{Failure, Reason};
use crate::event::decode;
use crate::snapshot::order::ChangedAt;
use crate::snapshot::OrderState;
use crate::state::{Owner, Restored, Sink};
use crate::telemetry::events::{self, Emit as _};
use crate::telemetry::labels::{Expiry, Fencing};

pub use super::commits::Reporter;

/// Tombstones written by one sweep task at most.
const SWEEP_BATCH: usize = 1_000;

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The offset that may be committed (nothing when `None`).
    pub offset: Option<i64>,
    /// No request of the partition was on the wire and no write of it can still land.
    pub quiet: bool,
}

/// What the tasks of one owned partition share: its sink (producer, epoch) and the count of its
/// requests on the wire.
pub struct Owned {
    /// The partition.
    pub partition: i32,
    /// Its writes.
    pub sink: Sink,
    /// Its POSTs on the wire now.
    pub requests: AtomicUsize,
}

enum Step {
    Stop,
    Finish,
    Task(Result<TaskResult, tokio::task::JoinError>),
    Record(Option<InRecord>),
    Commit,
    Sweep,
}

enum TaskResult {
    Order(Box<OrderDone>),
    DeadLettered {
        offset: i64,
        ok: bool,
    },
    /// A batch of tombstones past `expiry`; the first `written` are acknowledged.
    Swept {
        orders: Vec<Box<str>>,
        expiry: Expiry,
        written: usize,
    },
}

/// Whether an idle order is past its retention at `now` (Unix ms): an acknowledged final order
/// `final_retention` after its acknowledgement, unless a newer body of it is still due; any other
/// order (never paid, a draft, a payment dead-lettered, a final one with a body still due)
/// `non_final_retention` after its last change. Cheap checks first: the body is built only for
/// a final order past its retention.
fn expiry(
    state: &OrderState,
    now: u64,
    final_retention: Duration,
    non_final_retention: Duration,
) -> Option<Expiry> {
    let past = |t: u64, d: Duration| t.saturating_add(d.as_millis() as u64) <= now;
    if state
        .final_acked_at_ms
        .is_some_and(|t| past(t, final_retention))
        && !state.post_due()
    {
        return Some(Expiry::Final);
    }
    past(state.changed_at.0, non_final_retention).then_some(Expiry::NonFinal)
}

/// The worker of one partition.
pub struct PartitionWorker {
    shared: Arc<Shared>,
    partition: i32,
    /// Boxed: a map's spare capacity then costs a pointer per slot, not a whole state.
    orders: HashMap<Box<str>, Box<OrderState>>,
    /// Orders with a task running (an order task or its tombstone), and their queued jobs.
    active: HashMap<Box<str>, VecDeque<Job>>,
    tracker: OffsetTracker,
    tasks: JoinSet<TaskResult>,
    stop: Cancel,
    finish: Cancel,
    abort: Cancel,
    /// Orders this worker holds (in the map or checked out to a task).
    tracked: i64,
}

fn now_ms() -> u64 {
    crate::clock::unix_millis()
}

fn token() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// The signals a worker obeys.
pub struct Signals {
    /// Revocation or shutdown: dispatch nothing more, retries stop, in-flight requests end.
    pub stop: Cancel,
    /// Shutdown: take nothing new, finish every event already received, then report.
    pub finish: Cancel,
    /// The assignment is lost: abort everything now.
    pub abort: Cancel,
}

impl PartitionWorker {
    /// A worker for `partition`.
    pub fn new(shared: Arc<Shared>, partition: i32, signals: Signals) -> Self {
        Self {
            shared,
            partition,
            orders: HashMap::new(),
            active: HashMap::new(),
            tracker: OffsetTracker::starting_at(None),
            tasks: JoinSet::new(),
            stop: signals.stop,
            finish: signals.finish,
            abort: signals.abort,
            tracked: 0,
        }
    }

    /// Fence and restore, then process until stopped; reports on `finished`.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<InRecord>,
        commits: Reporter,
        finished: oneshot::Sender<Finished>,
    ) {
        let owned = Arc::new(Owned {
            partition: self.partition,
            sink: Sink::new(
                self.shared.producer.clone(),
                self.shared.changelog_topic.clone(),
                self.shared.dlq_topic.clone(),
                self.partition,
                self.shared.metrics.clone(),
                Some(self.shared.lease.clone()),
            ),
            requests: AtomicUsize::new(0),
        });
        if !self.restore(&owned).await {
            let quiet = self.settle(&owned, Instant::now()).await;
            let _ = finished.send(Finished {
                offset: None,
                quiet,
            });
            return;
        }
        self.process(&owned, &mut inbox, &commits).await;
        let stopped_at = Instant::now();
        let mut quiet = self.join_tasks(&owned).await;
        quiet &= self.settle(&owned, stopped_at).await;
        self.shared.metrics.tracked_orders.sub(self.tracked);
        let _ = finished.send(Finished {
            offset: self.tracker.committable(),
            quiet,
        });
    }

    /// Wait (within the drain bound from `since`) until every write of the partition is
    /// answered. True when none is left; after a lost assignment, at once (the next owner may
    /// run already: waiting changes nothing, and its fence makes our late writes ignored).
    async fn settle(&self, owned: &Arc<Owned>, since: Instant) -> bool {
        let left = self
            .shared
            .settings
            .drain_timeout
            .saturating_sub(since.elapsed());
        if self.abort.is_cancelled() {
            return true;
        }
        let o = owned.clone();
        let partition = self.partition;
        tokio::task::spawn_blocking(move || {
            let settled = o.sink.flush(left);
            if !settled {
                tracing::warn!(
                    partition,
                    unanswered = o.sink.in_flight(),
                    "writes of the partition still unanswered at the drain bound"
                );
            }
            settled
        })
        .await
        .unwrap_or(false)
    }

    async fn process(
        &mut self,
        owned: &Arc<Owned>,
        inbox: &mut mpsc::Receiver<InRecord>,
        commits: &Reporter,
    ) {
        let settings = self.shared.settings.clone();
        let mut commit_tick = tokio::time::interval(settings.commit_interval);
        let mut sweep_tick = tokio::time::interval(settings.sweep_interval);
        let mut stop = self.stop.clone();
        let mut finish = self.finish.clone();
        let mut finishing = false;
        let mut ticks = 0u64;
        loop {
            if finishing && self.tasks.is_empty() {
                break;
            }
            let room = if settings.sequential {
                self.tasks.is_empty()
            } else {
                self.tracker.in_flight() < settings.partition_buffer
            };
            let step = tokio::select! {
                biased;
                _ = stop.cancelled() => Step::Stop,
                _ = finish.cancelled(), if !finishing => Step::Finish,
                Some(result) = self.tasks.join_next(), if !self.tasks.is_empty() => Step::Task(result),
                record = inbox.recv(), if room && !finishing => Step::Record(record),
                _ = commit_tick.tick() => Step::Commit,
                _ = sweep_tick.tick(), if !finishing => Step::Sweep,
            };
            match step {
                Step::Stop | Step::Record(None) => break,
                Step::Finish => {
                    // Everything already received is finished; nothing new comes in.
                    finishing = true;
                    while let Ok(r) = inbox.try_recv() {
                        self.accept(r, owned);
                    }
                }
                Step::Task(result) => self.finished(result, owned),
                Step::Record(Some(r)) => self.accept(r, owned),
                Step::Commit => {
                    // Repeat an unchanged commit every 5th tick: one may have failed in a rebalance.
                    ticks += 1;
                    if let Some(offset) = self.tracker.take_commit(ticks % 5 == 0) {
                        commits.done(offset);
                    }
                }
                Step::Sweep => self.sweep(owned),
            }
        }
    }

    /// Stopping: nothing new is dispatched; tasks see the stop signal and end within
    /// `pipeline.drain_timeout_ms`, or are aborted at it (or at once when the drain is aborted).
    /// True when no request of theirs may still be on the wire.
    async fn join_tasks(&mut self, owned: &Arc<Owned>) -> bool {
        let bound = self.shared.settings.drain_timeout;
        let mut abort = self.abort.clone();
        // The set is taken out so `finished` may borrow `self`; `finished` never spawns (nothing
        // is dispatched once stopping), so the stand-in set stays empty and nothing is lost.
        let mut tasks = std::mem::take(&mut self.tasks);
        let joined = join_within(&mut tasks, bound, &mut abort, |r| self.finished(r, owned)).await;
        let spawned = std::mem::replace(&mut self.tasks, tasks);
        debug_assert!(spawned.is_empty(), "a task was spawned while draining");
        if joined {
            return true;
        }
        let on_wire = owned.requests.load(Ordering::SeqCst);
        events::DrainAborted {
            partition: self.partition,
            tasks: self.tasks.len(),
            requests_on_the_wire: on_wire,
        }
        .emit(&self.shared.metrics);
        self.tasks.abort_all();
        while let Some(result) = self.tasks.join_next().await {
            if let Ok(r) = result {
                self.finished(Ok(r), owned);
            }
        }
        on_wire == 0
    }

    /// Write a fence of this owner at `epoch` (a fresh token) and note it in `owner`; false when
    /// stopped first.
    async fn fence(owned: &Owned, owner: &mut Owner, epoch: u64, stop: &mut Cancel) -> bool {
        let token = token();
        match owned.sink.fence(epoch, &token, stop).await {
            Ok(offset) => owner.first_fence = owner.first_fence.min(offset),
            Err(_) => return false,
        }
        owner.tokens.push(token);
        owner.epoch = epoch;
        true
    }

    /// Fence the changelog partition and read it up to the fence. False when stopped first.
    async fn restore(&mut self, owned: &Arc<Owned>) -> bool {
        let partition = self.partition;
        let started = Instant::now();
        let mut restored = Restored::default();
        let mut epoch = now_ms().max(1);
        let mut stop = self.stop.clone();
        let mut owner = Owner {
            tokens: Vec::new(),
            first_fence: i64::MAX,
            epoch,
        };
        loop {
            if !Self::fence(owned, &mut owner, epoch, &mut stop).await {
                return false;
            }
            let Some(result) = self
                .read_changelog(&owner, std::mem::take(&mut restored), &mut stop)
                .await
            else {
                return false;
            };
            match result {
                Ok((Ok(()), into)) if into.superseded => {
                    // A newer owner fenced after us: we lost the partition while restoring.
                    tracing::warn!(
                        partition,
                        epoch,
                        "a newer owner fenced the partition during the restore: not processing it"
                    );
                    return false;
                }
                Ok((Ok(()), into)) if into.max_epoch >= epoch => {
                    // A previous owner's clock was ahead of ours: fence again above it.
                    tracing::info!(
                        partition,
                        epoch,
                        seen = into.max_epoch,
                        "fencing again above an epoch read before the fence"
                    );
                    epoch = into.max_epoch + 1;
                    restored = into;
                    continue;
                }
                Ok((Ok(()), into)) => {
                    owned.sink.set_epoch(epoch);
                    if !self.repair(owned, &into, &mut stop).await {
                        return false;
                    }
                    self.restored(into, epoch, started);
                    return true;
                }
                Ok((Err(e), _)) => {
                    tracing::error!(partition, error = %e, "changelog restore failed; retrying");
                }
                Err(e) => {
                    tracing::error!(partition, error = %e, "changelog restore task failed; retrying");
                }
            }
            restored = Restored::default();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.cancelled() => return false,
            }
        }
    }

    /// Read the changelog partition up to `owner`'s fence on a blocking thread, into `into`;
    /// `None` when stopped first (the reading thread sees the same cancellation and ends).
    async fn read_changelog(
        &self,
        owner: &Owner,
        mut into: Restored,
        stop: &mut Cancel,
    ) -> Option<Result<(Result<(), rdkafka::error::KafkaError>, Restored), tokio::task::JoinError>>
    {
        let shared = self.shared.clone();
        let partition = self.partition;
        let cancelled = stop.clone();
        let owner = owner.clone();
        let read = tokio::task::spawn_blocking(move || {
            let r = crate::state::restore_partition(
                &shared.restore_config,
                &shared.changelog_topic,
                partition,
                &owner,
                &mut into,
                Duration::from_secs(600),
                &cancelled,
            );
            (r, into)
        });
        tokio::select! {
            r = read => Some(r),
            _ = stop.cancelled() => None,
        }
    }

    /// The restore is complete and repaired: count it, log it, and take the orders.
    fn restored(&mut self, into: Restored, epoch: u64, started: Instant) {
        let (shared, partition) = (&self.shared, self.partition);
        if into.fenced > 0 {
            shared
                .metrics
                .fencing
                .with_label_values(&[Fencing::StaleRecordIgnored.as_str()])
                .inc_by(into.fenced);
        }
        tracing::info!(
            partition,
            epoch,
            orders = into.orders.len(),
            records = into.records,
            unreadable = into.unreadable,
            fenced = into.fenced,
            ms = started.elapsed().as_millis() as u64,
            "partition fenced and state restored"
        );
        self.tracked = into.orders.len() as i64;
        shared.metrics.tracked_orders.add(self.tracked);
        shared
            .metrics
            .restore_duration
            .observe(started.elapsed().as_secs_f64());
        self.orders = into.orders;
        shared.health.restored(partition);
    }

    /// Write again, with this owner's epoch, every order whose latest record was a zombie's:
    /// compaction keeps a key's latest record whatever its epoch, so the good one must be later.
    async fn repair(&self, owned: &Arc<Owned>, restored: &Restored, stop: &mut Cancel) -> bool {
        for key in &restored.stale_keys {
            let written = match restored.orders.get(key) {
                Some(state) => {
                    owned
                        .sink
                        .write_state_with(
                            key,
                            &state.record_bytes(key),
                            state.deliveries.header_value().as_deref(),
                            stop,
                        )
                        .await
                }
                None => owned.sink.tombstone(key, stop).await,
            };
            if written.is_err() {
                return false;
            }
        }
        if !restored.stale_keys.is_empty() {
            tracing::warn!(
                partition = self.partition,
                orders = restored.stale_keys.len(),
                "orders whose latest changelog record was a zombie's written again"
            );
        }
        true
    }

    fn accept(&mut self, record: InRecord, owned: &Arc<Owned>) {
        self.tracker.received(record.offset);
        let record = Arc::new(record);
        let event = match (&record.key, &record.value) {
            (None, _) => Err((
                Reason::InvalidEvent,
                "record has no key: nothing keeps its order's events together".to_string(),
            )),
            (Some(_), None) => Err((Reason::Malformed, "record has no value".to_string())),
            (Some(_), Some(value)) => decode(value, &self.shared.limits)
                .map_err(|e| (Reason::from(e.reason), e.to_string())),
        };
        match event {
            Err((reason, detail)) => self.spawn_dead_letter(record, reason, detail, owned),
            Ok(event) => {
                let order: Box<str> = event.out_order_no.as_str().into();
                let job = Job { record, event };
                match self.active.get_mut(&order) {
                    Some(queue) => queue.push_back(job),
                    None => {
                        self.active.insert(order.clone(), VecDeque::new());
                        self.spawn_order(order, vec![job], owned);
                    }
                }
            }
        }
    }

    fn spawn_dead_letter(
        &mut self,
        record: Arc<InRecord>,
        reason: Reason,
        detail: String,
        owned: &Arc<Owned>,
    ) {
        let shared = self.shared.clone();
        let owned = owned.clone();
        let mut cancel = self.stop.clone();
        let span = record_span(&record, None);
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let failure = Failure {
                    reason,
                    detail,
                    attempts: 0,
                    answer: None,
                };
                let ok =
                    order::dead_letter(&shared, &owned.sink, &record, None, &failure, &mut cancel)
                        .await;
                TaskResult::DeadLettered {
                    offset: record.offset,
                    ok,
                }
            },
            span,
        ));
    }

    fn spawn_order(&mut self, order: Box<str>, jobs: Vec<Job>, owned: &Arc<Owned>) {
        let state = self.orders.remove(&order).unwrap_or_else(|| {
            self.tracked += 1;
            self.shared.metrics.tracked_orders.inc();
            let mut new = Box::<OrderState>::default();
            new.changed_at = ChangedAt(now_ms());
            new
        });
        let shared = self.shared.clone();
        let cancel = self.stop.clone();
        let owned = owned.clone();
        let report = PanicReport {
            partition: self.partition,
            order: order.clone(),
        };
        let span = record_span(&jobs[0].record, Some(&order));
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let _report = report;
                let last_applied = state.applied.last().copied();
                let mut done = order::process(shared, owned, order, *state, jobs, cancel).await;
                // An event was applied: the order changed now (the retention clock restarts).
                if done.state.applied.last().copied() != last_applied {
                    done.state.changed_at = ChangedAt(now_ms());
                }
                TaskResult::Order(Box::new(done))
            },
            span,
        ));
    }

    /// Jobs that queued for `order` while its task ran: start the next task, or mark it idle.
    fn next_for(&mut self, order: Box<str>, owned: &Arc<Owned>) {
        let queued: Vec<Job> = self
            .active
            .get_mut(&order)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default();
        if queued.is_empty() || self.stop.is_cancelled() {
            self.active.remove(&order);
        } else {
            self.spawn_order(order, queued, owned);
        }
    }

    fn finished(&mut self, result: Result<TaskResult, tokio::task::JoinError>, owned: &Arc<Owned>) {
        match result {
            Ok(TaskResult::DeadLettered { offset, ok }) => {
                if ok {
                    self.tracker.done(offset);
                }
            }
            Ok(TaskResult::Order(done)) => {
                let done = *done;
                for offset in &done.done {
                    self.tracker.done(*offset);
                }
                let order = done.order;
                self.orders.insert(order.clone(), Box::new(done.state));
                self.next_for(order, owned);
            }
            Ok(TaskResult::Swept {
                orders,
                expiry,
                written,
            }) => {
                self.shared
                    .metrics
                    .orders_expired
                    .with_label_values(&[expiry.as_str()])
                    .inc_by(written as u64);
                tracing::debug!(
                    partition = self.partition,
                    orders = written,
                    state = expiry.as_str(),
                    "tombstones of orders past their retention acknowledged"
                );
                // Events that arrived while the tombstones were written start from a fresh
                // state, written after the tombstone (same partition, same producer: in order).
                for order in orders {
                    self.next_for(order, owned);
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => task_panicked(self.partition, &e, &self.shared.metrics),
        }
    }

    /// Tombstone the idle orders past their retention ([`expiry`]), logged once per sweep. A
    /// swept order counts as active until its tombstone is acknowledged, so an event for it
    /// waits, and the state it then writes comes after the tombstone in the log.
    fn sweep(&mut self, owned: &Arc<Owned>) {
        let now = now_ms();
        let settings = &self.shared.settings;
        let (mut finals, mut others) = (Vec::new(), Vec::new());
        for (k, s) in &self.orders {
            if self.active.contains_key(k) {
                continue;
            }
            match expiry(
                s,
                now,
                settings.final_retention,
                settings.non_final_retention,
            ) {
                Some(Expiry::Final) => finals.push(k.clone()),
                Some(Expiry::NonFinal) => others.push(k.clone()),
                None => {}
            }
        }
        if finals.is_empty() && others.is_empty() {
            return;
        }
        tracing::info!(
            partition = self.partition,
            final_orders = finals.len(),
            non_final_orders = others.len(),
            "tombstoning orders past their retention"
        );
        self.expire(finals, Expiry::Final, owned);
        self.expire(others, Expiry::NonFinal, owned);
    }

    /// Forget `expired` orders and write their tombstones, [`SWEEP_BATCH`] per task.
    fn expire(&mut self, mut expired: Vec<Box<str>>, expiry: Expiry, owned: &Arc<Owned>) {
        for k in &expired {
            self.orders.remove(k);
            self.active.insert(k.clone(), VecDeque::new());
        }
        self.tracked -= expired.len() as i64;
        self.shared.metrics.tracked_orders.sub(expired.len() as i64);
        while !expired.is_empty() {
            let batch: Vec<Box<str>> = expired.drain(..expired.len().min(SWEEP_BATCH)).collect();
            let owned = owned.clone();
            let mut cancel = self.stop.clone();
            self.tasks.spawn(async move {
                let mut written = 0;
                for k in &batch {
                    if owned.sink.tombstone(k, &mut cancel).await.is_err() {
                        break;
                    }
                    written += 1;
                }
                TaskResult::Swept {
                    orders: batch,
                    expiry,
                    written,
                }
            });
        }
    }
}

/// Armed inside an order task: dropped while the task unwinds from a panic, it logs the order
/// and its partition (the partition then exits the process, see [`task_panicked`]).
struct PanicReport {
    partition: i32,
    order: Box<str>,
}

impl Drop for PanicReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                partition = self.partition,
                out_order_no = %self.order,
                "the order task of this order panicked"
            );
        }
    }
}

/// The span of one task, so every line about it (retries, unverified answers, dead letters)
/// can be joined in the logs: the partition, the task's first offset, the order when the
/// record decoded, and the W3C trace id of its `traceparent` header when it has a valid one.
fn record_span(record: &InRecord, order: Option<&str>) -> tracing::Span {
    // ERROR level: a span's level only decides whether it exists, and its fields must be on the
    // WARN and ERROR lines of the task also when the log level is turned down.
    // Every field given at creation: a field recorded later makes the JSON formatter parse and
    // write the span's fields again (one span per order task, thousands a second).
    macro_rules! span {
        ($order:expr, $trace:expr) => {
            tracing::error_span!(
                "order",
                partition = record.partition,
                offset = record.offset,
                out_order_no = $order,
                trace_id = $trace,
            )
        };
    }
    use tracing::field::Empty;
    match (order, trace_id(&record.headers)) {
        (Some(order), Some(id)) => span!(order, id),
        (Some(order), None) => span!(order, Empty),
        (None, Some(id)) => span!(Empty, id),
        (None, None) => span!(Empty, Empty),
    }
}

/// The trace id of a W3C `traceparent` header (`<version>-<32 hex>-<16 hex>-<2 hex>`), when
/// valid: lower-case hex, neither id all zeros, version not `ff`, exactly four fields for
/// version `00` (later versions may append fields).
fn trace_id(headers: &[(String, Vec<u8>)]) -> Option<&str> {
    let (_, value) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("traceparent"))?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let mut fields = std::str::from_utf8(value).ok()?.split('-');
    let (version, id, parent, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let extra = fields.next().is_some();
    (hex(version, 2)
        && version != "ff"
        && !(version == "00" && extra)
        && hex(id, 32)
        && nonzero(id)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2))
    .then_some(id)
}

/// Join every task of `tasks` within `bound`, or until `abort`, each result to `finished`. True
/// when all ended in time; false at the bound or the abort, with the tasks still running left in
/// the set (the caller aborts them).
async fn join_within<T: 'static>(
    tasks: &mut JoinSet<T>,
    bound: Duration,
    abort: &mut Cancel,
    mut finished: impl FnMut(Result<T, tokio::task::JoinError>),
) -> bool {
    tokio::select! {
        _ = async {
            while let Some(result) = tasks.join_next().await {
                finished(result);
            }
        } => true,
        _ = tokio::time::sleep(bound) => false,
        _ = abort.cancelled() => false,
    }
}

/// An order task panicked (a bug): its order and its offsets would stay stuck for good (a hole
/// no commit passes), so the process exits 1 — crash-only, like SIGKILL, which the write-ahead
/// state makes safe: the next owner restores and re-posts what may not have landed.
fn task_panicked(
    partition: i32,
    e: &tokio::task::JoinError,
    metrics: &crate::telemetry::metrics::Metrics,
) {
    metrics
        .fencing
        .with_label_values(&[Fencing::TaskPanicked.as_str()])
        .inc();
    let msg = format!("an order task of partition {partition} panicked ({e}): exiting so the partition is restored and re-processed from its write-ahead state (crash-only)");
    crate::telemetry::exit_crash_only(&msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_comes_from_a_valid_traceparent_only() {
        let h = |v: &str| vec![("traceparent".to_string(), v.as_bytes().to_vec())];
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id(&h(&format!("00-{id}-00f067aa0ba902b7-01"))),
            Some(id)
        );
        assert_eq!(trace_id(&h("00-abc")), None, "too short");
        assert_eq!(
            trace_id(&h(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
            )),
            None,
            "all zeros is invalid"
        );
        assert_eq!(
            trace_id(&h(
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
            )),
            None,
            "upper case is invalid"
        );
        assert_eq!(trace_id(&[]), None);
        assert_eq!(
            trace_id(&h(&format!("ff-{id}-00f067aa0ba902b7-01"))),
            None,
            "version ff is invalid"
        );
        assert_eq!(
            trace_id(&h(&format!("00-{id}-0000000000000000-01"))),
            None,
            "a zero parent id is invalid"
        );
        assert_eq!(
            trace_id(&h(&format!("00-{id}-00f067aa0ba902b7-01-x"))),
            None,
            "version 00 has four fields"
        );
        assert_eq!(
            trace_id(&h(&format!("01-{id}-00f067aa0ba902b7-01-x"))),
            Some(id),
            "a later version may add fields"
        );
    }
    use crate::event::{decode, DecodeLimits};
    use crate::snapshot::Defaults;

    const DAY_MS: u64 = 86_400_000;

    /// An order after its first `events` (1: placed, 2: paid), last changed at `changed`.
    fn order(events: usize, changed: u64) -> OrderState {
        let mut s = OrderState::default();
        for value in &catering_sync_core::fixtures::order_events(1, 2)[..events] {
            let event = decode(value, &DecodeLimits::default()).unwrap();
            s.apply(&event, &Defaults::default());
        }
        s.changed_at = ChangedAt(changed);
        s
    }

    /// The sweep's decision with the defaults (1 day for paid orders, 7 days for the others).
    #[test]
    fn each_order_expires_after_its_own_retention() {
        let now = 1_000 * DAY_MS;
        let at = |s: &OrderState| {
            let (day, week) = (Duration::from_secs(86_400), Duration::from_secs(7 * 86_400));
            expiry(s, now, day, week)
        };
        let mut paid = order(2, now - 2 * DAY_MS);
        let body = paid.body().unwrap();
        paid.mark_acked(&body, now - 2 * DAY_MS);
        assert_eq!(at(&paid), Some(Expiry::Final));
        paid.final_acked_at_ms = Some(now - DAY_MS / 2);
        assert_eq!(at(&paid), None, "paid half a day ago");
        // Paid and acknowledged, but a newer body is due (a restored write-ahead record): kept
        // while it could still be posted, then expired as non-final.
        let mut due = order(2, now - 2 * DAY_MS);
        due.final_acked_at_ms = Some(now - 2 * DAY_MS);
        assert_eq!(at(&due), None);
        due.changed_at = ChangedAt(now - 7 * DAY_MS);
        assert_eq!(at(&due), Some(Expiry::NonFinal));
        // Placed and never paid (delivered or not), and a draft: a week after their last change.
        let placed = order(1, now - 6 * DAY_MS);
        assert_eq!(at(&placed), None);
        assert_eq!(at(&order(1, now - 7 * DAY_MS)), Some(Expiry::NonFinal));
        assert_eq!(at(&order(0, now - 8 * DAY_MS)), Some(Expiry::NonFinal));
        assert_eq!(at(&order(0, now)), None, "a draft changed now");
    }

    /// Tasks of `secs` virtual seconds each.
    fn sleepers(secs: &[u64]) -> JoinSet<u64> {
        let mut tasks = JoinSet::new();
        for &s in secs {
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_secs(s)).await;
                s
            });
        }
        tasks
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_joins_tasks_that_end_within_the_bound() {
        let t0 = Instant::now();
        let mut tasks = sleepers(&[1, 5, 29]);
        let mut ended = Vec::new();
        let joined = join_within(
            &mut tasks,
            Duration::from_secs(30),
            &mut Cancel::never(),
            |r| ended.push(r.unwrap()),
        )
        .await;
        assert!(joined);
        assert_eq!(ended, [1, 5, 29]);
        assert_eq!(
            Instant::now() - t0,
            Duration::from_secs(29),
            "done when the last one is"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_bound_stops_waiting_and_leaves_the_late_task_to_abort() {
        let t0 = Instant::now();
        let mut tasks = sleepers(&[1, 3_600]);
        let mut ended = Vec::new();
        let joined = join_within(
            &mut tasks,
            Duration::from_secs(30),
            &mut Cancel::never(),
            |r| ended.push(r.unwrap()),
        )
        .await;
        assert!(!joined);
        assert_eq!(ended, [1]);
        assert_eq!(
            Instant::now() - t0,
            Duration::from_secs(30),
            "exactly at the bound"
        );
        assert_eq!(
            tasks.len(),
            1,
            "the late task is left for the caller to abort"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_aborted_drain_stops_waiting_at_once() {
        let t0 = Instant::now();
        let mut tasks = sleepers(&[10]);
        let canceller = crate::clock::Canceller::new();
        let mut abort = canceller.token();
        canceller.cancel();
        let joined = join_within(&mut tasks, Duration::from_secs(30), &mut abort, |_| {
            panic!("nothing ends before the abort")
        })
        .await;
        assert!(!joined);
        assert_eq!(Instant::now(), t0, "no virtual time passed");
    }
}
