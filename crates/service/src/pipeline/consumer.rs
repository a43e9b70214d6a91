//! The poll loop, on a dedicated thread that owns the group consumer: it routes records to
//! partition workers, pauses partitions whose buffer is full (and every partition while a
//! deployment fault is active; an open breaker holds back sending only), commits the offsets workers report done
//! for partitions it still owns (asynchronously, one commit in flight: a coordinator that is down
//! never blocks the loop), and handles rebalances: a revoked partition is drained within
//! the drain bound and its done offsets committed before the partition is released; an assigned
//! one gets a worker that restores its state before processing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
// The poll thread is not a runtime task: it measures real time (see `crate::clock`).
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};

use super::commit_queue_ffi::CommitReplies;
use super::commits::{Answer, CommitQueue, Done, Offsets, Reporter};
use super::kafka::InRecord;
use super::partition::{Finished, PartitionWorker, Signals};
use super::Shared;
use crate::clock::{Cancel, Canceller};
use crate::telemetry::events::{self, Emit as _};
use crate::telemetry::labels::{CommitFailure, Fencing, RebalanceKind};

struct Handle {
    tx: mpsc::Sender<InRecord>,
    stash: VecDeque<InRecord>,
    consumer_paused: bool,
    stop: Canceller,
    finish: Canceller,
    abort: Canceller,
    finished: oneshot::Receiver<Finished>,
}

/// How a partition is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Revoked: stop at once, drain within the bound, commit what is done.
    Revoke,
    /// The assignment was lost (session timeout, poll interval exceeded): another member may own
    /// the partition already. Abort everything at once and commit nothing.
    Lost,
}

/// The consumer's context: rebalance callbacks run on the poll thread, inside `poll`.
pub struct PollContext {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    partitions: Mutex<HashMap<i32, Handle>>,
    commits: std_mpsc::Sender<Done>,
    /// Shutting down: partitions assigned now are not started.
    stopping: AtomicBool,
    /// The periodic commits: one asynchronous commit in flight, answered on `replies`.
    queue: Mutex<CommitQueue>,
    /// The periodic commits' reply queue (set right after the consumer is made, taken before it
    /// is dropped).
    replies: Mutex<Option<CommitReplies>>,
}

/// The `kind` label of a failed commit.
fn commit_failure_kind(e: &KafkaError) -> CommitFailure {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(
            C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::WaitingForCoordinator,
        ) => CommitFailure::Coordinator,
        Some(
            C::RebalanceInProgress
            | C::IllegalGeneration
            | C::UnknownMemberId
            | C::FencedInstanceId
            | C::State
            | C::AssignmentLost,
        ) => CommitFailure::Rebalance,
        Some(C::RequestTimedOut | C::OperationTimedOut | C::MessageTimedOut) => {
            CommitFailure::Timeout
        }
        Some(C::BrokerTransportFailure | C::AllBrokersDown | C::NetworkException) => {
            CommitFailure::Transport
        }
        _ => CommitFailure::Other,
    }
}

/// The input topic's offsets in a commit.
fn offsets_of(topic: &str, tpl: &TopicPartitionList) -> Offsets {
    tpl.elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// How long a drain commit waits for the periodic commit in flight to be answered first.
const SETTLE_BOUND: Duration = Duration::from_secs(3);

/// A worker that ended without a report (it panicked, or the runtime is going away) has nothing
/// to commit, and nothing says its requests and writes are over: not quiet.
const NOTHING: Finished = Finished {
    offset: None,
    quiet: false,
};

impl ClientContext for PollContext {
    /// librdkafka statistics: consumer lag and committed offset per assigned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.input_topic) else {
            return;
        };
        let owned = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for (p, s) in &topic.partitions {
            if !owned.contains_key(p) {
                continue;
            }
            let lag = if s.consumer_lag >= 0 {
                s.consumer_lag
            } else if s.hi_offset >= 0 && s.committed_offset >= 0 {
                (s.hi_offset - s.committed_offset).max(0)
            } else if s.hi_offset >= 0 && s.lo_offset >= 0 {
                s.hi_offset - s.lo_offset
            } else {
                continue;
            };
            self.shared
                .metrics
                .consumer_lag
                .with_label_values(&[&p.to_string()])
                .set(lag);
        }
    }
}

impl ConsumerContext for PollContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let kind = if matches!(rebalance, Rebalance::Assign(_)) {
            RebalanceKind::Assign
        } else {
            RebalanceKind::Revoke
        };
        self.shared
            .metrics
            .rebalances
            .with_label_values(&[kind.as_str()])
            .inc();
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<i32> = tpl
                .elements()
                .iter()
                .filter(|e| e.topic() == self.shared.input_topic)
                .map(|e| e.partition())
                .collect();
            if consumer.assignment_lost() {
                events::AssignmentLost {
                    partitions: &revoked,
                }
                .emit(&self.shared.metrics);
                self.drain(consumer, &revoked, Release::Lost);
            } else {
                tracing::info!(partitions = ?revoked, "partitions revoked: draining");
                self.drain(consumer, &revoked, Release::Revoke);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned: Vec<i32> = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == self.shared.input_topic)
                    .map(|e| e.partition())
                    .collect();
                if self.stopping.load(Ordering::SeqCst) {
                    tracing::info!(partitions = ?assigned, "partitions assigned while stopping: not started, paused");
                    let _ = consumer.pause(tpl);
                    return;
                }
                tracing::info!(partitions = ?assigned, "partitions assigned: restoring");
                for p in assigned {
                    self.start_worker(p);
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }
}

impl PollContext {
    /// One periodic commit's answer (from [`CommitReplies`], on the poll thread).
    fn on_answer(&self, result: KafkaResult<()>, offsets: &[(String, i32, i64)]) {
        let answered: Offsets = offsets
            .iter()
            .filter(|(t, _, o)| *t == self.shared.input_topic && *o >= 0)
            .map(|(_, p, o)| (*p, *o))
            .collect();
        tracing::debug!(ok = result.is_ok(), offsets = ?answered, "offset commit answered");
        let answer = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .answered(&answered, result.is_ok(), Instant::now());
        match (&result, answer) {
            (Ok(()), Answer::InFlight { took, current }) => {
                self.record_committed(&current);
                self.shared
                    .metrics
                    .commit_duration
                    .observe(took.as_secs_f64());
            }
            (Err(e), Answer::InFlight { .. }) => {
                self.shared
                    .metrics
                    .commit_failures
                    .with_label_values(&[commit_failure_kind(e).as_str()])
                    .inc();
                tracing::warn!(error = %e, offsets = ?answered, "offset commit failed; repeated after a backoff");
            }
            // A commit given up on: its offsets were sent again (or are no longer owned).
            (_, Answer::Other) => {
                tracing::debug!(ok = result.is_ok(), offsets = ?answered, "a late answer to an earlier offset commit")
            }
        }
    }

    /// Serve the commit answers that are there, waiting up to `wait` for the first one.
    fn serve_replies(&self, wait: Duration) {
        let mut wait = wait;
        loop {
            let reply = {
                let replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
                match replies.as_ref() {
                    Some(r) => r.next(wait),
                    None => None,
                }
            };
            let Some((result, offsets)) = reply else {
                return;
            };
            self.on_answer(result, &offsets);
            wait = Duration::ZERO;
        }
    }

    /// Let the periodic commit in flight be answered (up to `bound`) before a drain commit is
    /// sent: librdkafka retries a commit itself (coordinator loading, timeouts), and a retry of
    /// the older one landing after the drain commit would move the committed offset back.
    fn settle_commits(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        while self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .in_flight()
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    bound_ms = bound.as_millis() as u64,
                    "the periodic offset commit in flight was not answered before the drain commit"
                );
                return;
            }
            self.serve_replies(left.min(Duration::from_millis(100)));
        }
    }

    /// The partitions this member owns now.
    fn owned(&self) -> Vec<i32> {
        self.partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    fn record_committed(&self, offsets: &Offsets) {
        for (p, o) in offsets {
            self.shared
                .metrics
                .committed_offset
                .with_label_values(&[&p.to_string()])
                .set(*o);
        }
    }

    fn start_worker(&self, partition: i32) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if partitions.contains_key(&partition) {
            return;
        }
        self.shared.health.assigned(partition);
        self.shared.metrics.assigned_partitions.inc();
        let (tx, rx) = mpsc::channel(self.shared.settings.partition_buffer.max(1));
        let (stop, finish, abort) = (Canceller::new(), Canceller::new(), Canceller::new());
        let (done_tx, done_rx) = oneshot::channel();
        let worker = PartitionWorker::new(
            self.shared.clone(),
            partition,
            Signals {
                stop: stop.token(),
                finish: finish.token(),
                abort: abort.token(),
            },
        );
        let generation = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .assigned(partition);
        let commits = Reporter::new(self.commits.clone(), partition, generation);
        self.runtime.spawn(worker.run(rx, commits, done_tx));
        partitions.insert(
            partition,
            Handle {
                tx,
                stash: VecDeque::new(),
                consumer_paused: false,
                stop,
                finish,
                abort,
                finished: done_rx,
            },
        );
    }

    /// Stop the workers of `partitions`, wait (bounded) for them, commit what they finished.
    /// Returns only when no request of these partitions is on the wire and no write of theirs
    /// can still land; when a worker cannot report that within the bound, the process exits
    /// (crash-only) instead of letting the next owner start beside it.
    fn drain(&self, consumer: &BaseConsumer<Self>, partitions: &[i32], how: Release) {
        let handles: Vec<(i32, Handle)> = {
            let mut map = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            partitions
                .iter()
                .filter_map(|p| map.remove(p).map(|h| (*p, h)))
                .collect()
        };
        for (_, h) in &handles {
            h.stop.cancel();
            if how == Release::Lost {
                h.abort.cancel();
            }
        }
        // The worker keeps the drain bound itself (tasks, then writes); this is its margin.
        let deadline = Instant::now() + self.shared.settings.drain_timeout + Duration::from_secs(3);
        let results = handles
            .into_iter()
            .map(|(p, mut h)| {
                let left = deadline.saturating_duration_since(Instant::now());
                let finished = self
                    .runtime
                    .block_on(async { tokio::time::timeout(left, &mut h.finished).await })
                    .ok()
                    .map(|r| r.unwrap_or(NOTHING));
                (p, finished)
            })
            .collect();
        self.conclude(consumer, results, how);
    }

    /// Commit what released workers finished, forget the partitions, and exit (crash-only) when
    /// one of them did not report a quiet end (`None`: no report within the bound).
    fn conclude(
        &self,
        consumer: &BaseConsumer<Self>,
        results: Vec<(i32, Option<Finished>)>,
        how: Release,
    ) {
        let mut tpl = TopicPartitionList::new();
        let mut unquiet = Vec::new();
        for (p, finished) in results {
            self.forget(p);
            match finished {
                Some(f) if how == Release::Lost => {
                    if !f.quiet {
                        tracing::warn!(
                            partition = p,
                            "assignment lost while a request of the partition was on the wire"
                        );
                    }
                }
                Some(Finished { offset, quiet }) => {
                    if !quiet {
                        unquiet.push(p);
                    }
                    if let Some(offset) = offset {
                        let _ = tpl.add_partition_offset(
                            &self.shared.input_topic,
                            p,
                            Offset::Offset(offset),
                        );
                    }
                }
                None if how == Release::Lost => {}
                None => unquiet.push(p),
            }
        }
        if tpl.count() > 0 {
            self.settle_commits(SETTLE_BOUND.min(self.shared.settings.drain_timeout));
            let committed = consumer.commit(&tpl, CommitMode::Sync);
            if committed.is_ok() {
                self.record_committed(&offsets_of(&self.shared.input_topic, &tpl));
            }
            match committed {
                Ok(()) => {
                    tracing::info!(offsets = ?tpl.to_topic_map(), "committed drained partitions")
                }
                Err(e) => tracing::warn!(error = %e, "commit of drained partitions failed"),
            }
        }
        if !unquiet.is_empty() {
            self.shared
                .metrics
                .fencing
                .with_label_values(&[Fencing::UnquietExit.as_str()])
                .inc();
            let msg = format!("partitions {unquiet:?} could not be drained quietly within pipeline.drain_timeout_ms (a request or a write of theirs may still land): exiting rather than overlap with the next owner");
            crate::telemetry::exit_crash_only(&msg);
        }
    }

    /// Shutdown: every worker finishes what it received within `within` while the poll thread
    /// keeps serving the group (a rebalance meanwhile is not held up by this member); then what
    /// is left is drained as on revocation.
    fn shut_down(&self, consumer: &BaseConsumer<Self>, within: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        for h in self
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            h.finish.cancel();
        }
        let deadline = Instant::now() + within;
        loop {
            let finished: Vec<(i32, Option<Finished>)> = {
                let mut map = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
                let ended: Vec<(i32, Finished)> = map
                    .iter_mut()
                    .filter_map(|(p, h)| match h.finished.try_recv() {
                        Ok(f) => Some((*p, f)),
                        Err(oneshot::error::TryRecvError::Closed) => Some((*p, NOTHING)),
                        Err(oneshot::error::TryRecvError::Empty) => None,
                    })
                    .collect();
                for (p, _) in &ended {
                    map.remove(p);
                }
                ended.into_iter().map(|(p, f)| (p, Some(f))).collect()
            };
            if !finished.is_empty() {
                self.conclude(consumer, finished, Release::Revoke);
            }
            let left = self
                .partitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len();
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            // Records still delivered while paused come after everything received: the next
            // owner reads them. Rebalance callbacks run in here.
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
                tracing::warn!(error = %e, "consumer error while shutting down");
            }
        }
        let rest = self.owned();
        self.drain(consumer, &rest, Release::Revoke);
    }

    /// Drop a released partition's health and metric entries, and its waiting commit.
    fn forget(&self, p: i32) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(p);
        self.shared.health.revoked(p);
        self.shared.metrics.assigned_partitions.dec();
        let label = p.to_string();
        let m = &self.shared.metrics;
        let _ = m.consumer_lag.remove_label_values(&[&label]);
        let _ = m.committed_offset.remove_label_values(&[&label]);
        let _ = m.events_consumed.remove_label_values(&[&label]);
    }
}

impl Drop for PollLoop {
    /// The reply queue goes before the consumer (librdkafka destroys a client only once every
    /// queue handle of it is gone).
    fn drop(&mut self) {
        drop(
            self.ctx()
                .replies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

/// Runs the poll loop until `stop` is set, then drains every partition, commits, and closes the
/// consumer (leaving the group).
pub struct PollLoop {
    consumer: BaseConsumer<PollContext>,
    commits: std_mpsc::Receiver<Done>,
    paused: watch::Receiver<bool>,
}

impl PollLoop {
    /// Create the consumer and subscribe.
    pub fn new(
        shared: Arc<Shared>,
        config: &rdkafka::ClientConfig,
        runtime: tokio::runtime::Handle,
    ) -> KafkaResult<Self> {
        let (commit_tx, commits) = std_mpsc::channel();
        let paused = shared.merchants.paused();
        let context = PollContext {
            shared: shared.clone(),
            runtime,
            partitions: Mutex::new(HashMap::new()),
            commits: commit_tx,
            stopping: AtomicBool::new(false),
            queue: Mutex::new(CommitQueue::default()),
            replies: Mutex::new(None),
        };
        let consumer: BaseConsumer<PollContext> = config.create_with_context(context)?;
        *consumer
            .context()
            .replies
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(CommitReplies::new(&consumer));
        consumer.subscribe(&[&shared.input_topic])?;
        Ok(Self {
            consumer,
            commits,
            paused,
        })
    }

    fn ctx(&self) -> &PollContext {
        self.consumer.context()
    }

    /// Take the workers' done offsets and send the next periodic commit, asynchronously: at
    /// most one is in flight, its answer is read from the reply queue on a later iteration, so
    /// the loop never waits for the coordinator. A failure is repeated after a backoff.
    fn commit_done(&self) {
        let ctx = self.ctx();
        ctx.serve_replies(Duration::ZERO);
        let now = Instant::now();
        let next = {
            let mut queue = ctx.queue.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(done) = self.commits.try_recv() {
                queue.want(done);
            }
            if queue.expire(now) {
                ctx.shared
                    .metrics
                    .commit_failures
                    .with_label_values(&[CommitFailure::Timeout.as_str()])
                    .inc();
                tracing::warn!(
                    "offset commit unanswered for {} s; repeated",
                    super::commits::ANSWER_TIMEOUT.as_secs()
                );
            }
            queue.next(now)
        };
        let Some(offsets) = next else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            let _ = tpl.add_partition_offset(&ctx.shared.input_topic, *p, Offset::Offset(*o));
        }
        let sent = match ctx
            .replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(replies) => replies.send(&self.consumer, &tpl),
            None => Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerDestroy)),
        };
        if let Err(e) = sent {
            ctx.shared
                .metrics
                .commit_failures
                .with_label_values(&[commit_failure_kind(&e).as_str()])
                .inc();
            tracing::warn!(error = %e, offsets = ?offsets, "offset commit not sent; repeated after a backoff");
            ctx.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .not_sent(Instant::now());
        }
    }

    fn tp(&self, p: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.ctx().shared.input_topic, p);
        tpl
    }

    /// Move stashed records into workers, and pause/resume partitions as buffers and the global
    /// pause dictate.
    fn reconcile(&self) {
        let global = *self.paused.borrow();
        let mut map = self
            .ctx()
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut paused = 0;
        for (p, h) in map.iter_mut() {
            while let Some(r) = h.stash.pop_front() {
                match h.tx.try_send(r) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(r))
                    | Err(mpsc::error::TrySendError::Closed(r)) => {
                        h.stash.push_front(r);
                        break;
                    }
                }
            }
            let want = global || !h.stash.is_empty();
            if want != h.consumer_paused {
                let tpl = self.tp(*p);
                let result = if want {
                    self.consumer.pause(&tpl)
                } else {
                    self.consumer.resume(&tpl)
                };
                match result {
                    Ok(()) => h.consumer_paused = want,
                    Err(e) => tracing::warn!(partition = p, error = %e, "pause/resume failed"),
                }
            }
            paused += i64::from(h.consumer_paused);
        }
        self.ctx().shared.metrics.paused_partitions.set(paused);
    }

    fn route(&self, record: InRecord) {
        self.ctx()
            .shared
            .metrics
            .events_consumed
            .with_label_values(&[&record.partition.to_string()])
            .inc();
        let mut map = self
            .ctx()
            .partitions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(h) = map.get_mut(&record.partition) else {
            return;
        };
        if !h.stash.is_empty() {
            h.stash.push_back(record);
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) =
            h.tx.try_send(record)
        {
            h.stash.push_back(r);
        }
    }

    /// Poll until `stop`; then drain everything, commit, and close.
    pub fn run(self, stop: Cancel) {
        while !stop.is_cancelled() {
            self.commit_done();
            self.reconcile();
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => self.route(InRecord::from_message(&m)),
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            self.ctx().shared.health.polled();
            self.ctx()
                .shared
                .metrics
                .last_poll
                .set(crate::clock::unix_secs());
        }
        tracing::info!("stopping: finishing what was received, then draining");
        let _ = self
            .consumer
            .pause(&self.consumer.assignment().unwrap_or_default());
        self.commit_done();
        let settings = &self.ctx().shared.settings;
        let finish_within = settings
            .shutdown_timeout
            .saturating_sub(settings.drain_timeout);
        self.ctx().shut_down(&self.consumer, finish_within);
        self.consumer.unsubscribe();
        // Dropping the consumer closes it and leaves the group.
    }
}
