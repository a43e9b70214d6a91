//! One assigned partition: restore its state, then take its records in offset order, run the
//! events of different orders concurrently and those of one order strictly in sequence, track
//! which offsets are done, and ask for commits. On stop: dispatch nothing more, let in-flight
//! work finish or give up (retries stop at once), and report the final committable offset.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::kafka::InRecord;
use super::offsets::OffsetTracker;
use super::order::{self, Job, OrderDone};
use super::Shared;
use crate::dead_letter::{Failure, Reason};
use crate::event::{decode, DecodeReason};
use crate::snapshot::OrderState;

/// A commit request for the poll thread: (partition, offset).
pub type CommitRequest = (i32, i64);

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
    DeadLettered { offset: i64, ok: bool },
}

/// The worker of one partition.
pub struct PartitionWorker {
    shared: Arc<Shared>,
    partition: i32,
    /// Boxed: a map's spare capacity then costs a pointer per slot, not a whole state.
    orders: HashMap<Box<str>, Box<OrderState>>,
    /// Orders with a task running, and their queued jobs.
    active: HashMap<Box<str>, VecDeque<Job>>,
    tracker: OffsetTracker,
    tasks: JoinSet<TaskResult>,
    stop: watch::Receiver<bool>,
    finish: watch::Receiver<bool>,
    /// Orders this worker holds (in the map or checked out to a task).
    tracked: i64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PartitionWorker {
    /// A worker for `partition`. `stop` (revocation): dispatch nothing more, retries stop at once,
    /// in-flight requests end. `finish` (shutdown): take nothing new from the consumer, but finish
    /// every event already received, then report.
    pub fn new(
        shared: Arc<Shared>,
        partition: i32,
        stop: watch::Receiver<bool>,
        finish: watch::Receiver<bool>,
    ) -> Self {
        Self {
            shared,
            partition,
            orders: HashMap::new(),
            active: HashMap::new(),
            tracker: OffsetTracker::starting_at(None),
            tasks: JoinSet::new(),
            stop,
            finish,
            tracked: 0,
        }
    }

    /// Restore, then process until stopped; sends the final committable offset on `finished`.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<InRecord>,
        commits: std::sync::mpsc::Sender<CommitRequest>,
        finished: oneshot::Sender<Option<i64>>,
    ) {
        if !self.restore().await {
            let _ = finished.send(None);
            return;
        }
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
                _ = stop.wait_for(|s| *s) => Step::Stop,
                _ = finish.wait_for(|f| *f), if !finishing => Step::Finish,
                Some(result) = self.tasks.join_next(), if !self.tasks.is_empty() => Step::Task(result),
                record = inbox.recv(), if room && !finishing => Step::Record(record),
                _ = commit_tick.tick() => Step::Commit,
                _ = sweep_tick.tick() => Step::Sweep,
            };
            match step {
                Step::Stop | Step::Record(None) => break,
                Step::Finish => {
                    // Everything already received is finished; nothing new comes in.
                    finishing = true;
                    while let Ok(r) = inbox.try_recv() {
                        self.accept(r);
                    }
                }
                Step::Task(result) => self.finished(result),
                Step::Record(Some(r)) => self.accept(r),
                Step::Commit => {
                    // Repeat an unchanged commit every 5th tick: one may have failed in a rebalance.
                    ticks += 1;
                    if let Some(offset) = self.tracker.take_commit(ticks % 5 == 0) {
                        let _ = commits.send((self.partition, offset));
                    }
                }
                Step::Sweep => self.sweep(settings.final_retention),
            }
        }
        // Stopping: nothing new is dispatched; tasks see the stop signal and end.
        while let Some(result) = self.tasks.join_next().await {
            self.finished(result);
        }
        self.shared.metrics.tracked_orders.sub(self.tracked);
        let _ = finished.send(self.tracker.committable());
    }

    async fn restore(&mut self) -> bool {
        let shared = self.shared.clone();
        let partition = self.partition;
        let started = std::time::Instant::now();
        loop {
            let s = shared.clone();
            let result = tokio::task::spawn_blocking(move || {
                crate::state::restore_partition(
                    &s.restore_config,
                    &s.changelog_topic,
                    partition,
                    Duration::from_secs(600),
                )
            })
            .await;
            match result {
                Ok(Ok(restored)) => {
                    tracing::info!(
                        partition,
                        orders = restored.orders.len(),
                        records = restored.records,
                        unreadable = restored.unreadable,
                        ms = started.elapsed().as_millis() as u64,
                        "partition state restored"
                    );
                    self.tracked = restored.orders.len() as i64;
                    shared.metrics.tracked_orders.add(self.tracked);
                    shared
                        .metrics
                        .restore_duration
                        .observe(started.elapsed().as_secs_f64());
                    self.orders = restored.orders;
                    shared.health.restored(partition);
                    return true;
                }
                Ok(Err(e)) => {
                    tracing::error!(partition, error = %e, "changelog restore failed; retrying")
                }
                Err(e) => {
                    tracing::error!(partition, error = %e, "changelog restore task failed; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = self.stop.wait_for(|s| *s) => return false,
            }
        }
    }

    fn accept(&mut self, record: InRecord) {
        self.tracker.received(record.offset);
        let record = Arc::new(record);
        let event = match (&record.key, &record.value) {
            (None, _) => Err((
                Reason::InvalidEvent,
                "record has no key: nothing keeps its order's events together".to_string(),
            )),
            (Some(_), None) => Err((Reason::Malformed, "record has no value".to_string())),
            (Some(_), Some(value)) => decode(value, &self.shared.limits).map_err(|e| {
                let reason = match e.reason {
                    DecodeReason::Malformed => Reason::Malformed,
                    DecodeReason::InvalidEvent => Reason::InvalidEvent,
                };
                (reason, e.to_string())
            }),
        };
        match event {
            Err((reason, detail)) => self.spawn_dead_letter(record, reason, detail),
            Ok(event) => {
                let order: Box<str> = event.out_order_no.as_str().into();
                let job = Job { record, event };
                match self.active.get_mut(&order) {
                    Some(queue) => queue.push_back(job),
                    None => {
                        self.active.insert(order.clone(), VecDeque::new());
                        self.spawn_order(order, vec![job]);
                    }
                }
            }
        }
    }

    fn spawn_dead_letter(&mut self, record: Arc<InRecord>, reason: Reason, detail: String) {
        let shared = self.shared.clone();
        let mut cancel = self.stop.clone();
        self.tasks.spawn(async move {
            let failure = Failure {
                reason,
                detail,
                attempts: 0,
                answer: None,
            };
            let ok = order::dead_letter(&shared, &record, None, &failure, &mut cancel).await;
            TaskResult::DeadLettered {
                offset: record.offset,
                ok,
            }
        });
    }

    fn spawn_order(&mut self, order: Box<str>, jobs: Vec<Job>) {
        let state = self.orders.remove(&order).unwrap_or_else(|| {
            self.tracked += 1;
            self.shared.metrics.tracked_orders.inc();
            Box::default()
        });
        let shared = self.shared.clone();
        let cancel = self.stop.clone();
        let partition = self.partition;
        self.tasks.spawn(async move {
            TaskResult::Order(Box::new(
                order::process(shared, partition, order, *state, jobs, cancel).await,
            ))
        });
    }

    fn finished(&mut self, result: Result<TaskResult, tokio::task::JoinError>) {
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
                let queued: Vec<Job> = self
                    .active
                    .get_mut(&order)
                    .map(|q| q.drain(..).collect())
                    .unwrap_or_default();
                if queued.is_empty() || *self.stop.borrow() {
                    self.active.remove(&order);
                } else {
                    self.spawn_order(order, queued);
                }
            }
            Err(e) => tracing::error!(partition = self.partition, error = %e, "order task failed"),
        }
    }

    /// Tombstone orders acknowledged as paid longer than the retention ago.
    fn sweep(&mut self, retention: Duration) {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let expired: Vec<Box<str>> = self
            .orders
            .iter()
            .filter(|(k, s)| {
                !self.active.contains_key(*k)
                    && s.final_acked_at_ms.is_some_and(|t| t <= cutoff)
                    && !s.post_due()
            })
            .map(|(k, _)| k.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for k in &expired {
            self.orders.remove(k);
        }
        self.tracked -= expired.len() as i64;
        self.shared.metrics.tracked_orders.sub(expired.len() as i64);
        let shared = self.shared.clone();
        let partition = self.partition;
        let mut cancel = self.stop.clone();
        tokio::spawn(async move {
            for k in &expired {
                if shared
                    .sink
                    .tombstone(partition, k, &mut cancel)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tracing::info!(
                partition,
                orders = expired.len(),
                "tombstoned final orders past retention"
            );
        });
    }
}
