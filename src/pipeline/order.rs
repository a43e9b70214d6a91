//! Processing the queued events of one order, strictly in sequence: apply, post when due (with
//! status-preserving coalescing), or dead-letter.
//!
//! Write-ahead state: the order's new state (applied event ids and the snapshot whose body is
//! about to be posted) is durable in the changelog *before* the post goes on the wire. After a
//! verified 204 the acknowledged digest follows without blocking the order's next event (losing
//! it costs at most a duplicate post of the same body). A post that ends in a dead letter makes
//! the previous state durable again before its offsets are done. So a restart never posts a body
//! older than one that may have been acknowledged: the redelivered events are duplicates of the
//! restored state, and a restored body that was never acknowledged is posted again.
//!
//! An offset is reported done only when its event is acknowledged by a verified 204 (its state
//! was durable before the post), or it needed no post and its state is durable, or its dead
//! letter is acknowledged.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::delivery::Delivered;
use super::kafka::InRecord;
use super::lease::{crash_point, CrashPoint};
use super::partition::Owned;
use super::Shared;
use crate::dead_letter::{self, Failure, Reason, Source};
use crate::event::OrderEvent;
use crate::snapshot::{may_coalesce, OrderState, Outcome};
use crate::state::Sink;

/// One decoded event waiting for its order.
#[derive(Debug, Clone)]
pub struct Job {
    /// The record as received.
    pub record: Arc<InRecord>,
    /// The decoded event.
    pub event: OrderEvent,
}

/// What an order task hands back to its partition.
#[derive(Debug)]
pub struct OrderDone {
    /// The order.
    pub order: Box<str>,
    /// Its state after the jobs (unchanged by events that were not applied).
    pub state: OrderState,
    /// Offsets that are done.
    pub done: Vec<i64>,
}

/// Dead-letter an original record; true when acknowledged.
pub async fn dead_letter(
    shared: &Shared,
    sink: &Sink,
    record: &InRecord,
    out_order_no: Option<&str>,
    failure: &Failure<'_>,
    cancel: &mut watch::Receiver<bool>,
) -> bool {
    let source = Source {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
    };
    let dl = dead_letter::build(
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
        &source,
        &shared.group,
        failure,
        OffsetDateTime::now_utc(),
    );
    let ok = sink.dead_letter(&dl, cancel).await.is_ok();
    if ok {
        shared
            .metrics
            .dead_letters
            .with_label_values(&[failure.reason.as_str()])
            .inc();
        tracing::warn!(
            partition = record.partition,
            offset = record.offset,
            out_order_no = out_order_no.unwrap_or(""),
            reason = failure.reason.as_str(),
            error = %failure.detail,
            attempts = failure.attempts,
            http_status = failure.answer.map(|a| a.status),
            "dead-lettered"
        );
    }
    ok
}

struct Run<'a> {
    shared: &'a Shared,
    owned: &'a Arc<Owned>,
    state: OrderState,
    done: Vec<i64>,
    cancel: watch::Receiver<bool>,
}

impl Run<'_> {
    /// The write-ahead record: the state about to be posted, its acknowledged digest unknown.
    async fn write_ahead(&mut self, order: &str) -> bool {
        let value = self.state.write_ahead_bytes(order);
        self.write(order, &value).await
    }

    async fn write_state(&mut self, order: &str) -> bool {
        let value = self.state.record_bytes(order);
        self.write(order, &value).await
    }

    async fn write(&mut self, order: &str, value: &[u8]) -> bool {
        self.owned
            .sink
            .write_state(order, value, &mut self.cancel)
            .await
            .is_ok()
    }

    /// Dead-letter every job of a group that could not be delivered; true when all are written.
    async fn dead_letter_group(&mut self, group: &[Job], failure: &Failure<'_>) -> bool {
        for job in group {
            if !dead_letter(
                self.shared,
                &self.owned.sink,
                &job.record,
                Some(&job.event.out_order_no),
                failure,
                &mut self.cancel,
            )
            .await
            {
                return false;
            }
            self.done.push(job.record.offset);
        }
        true
    }
}

/// Process `jobs` of one order in sequence. Stops early when `cancel` turns true (the partition
/// is being given up): what is not done is redone by the next owner.
pub async fn process(
    shared: Arc<Shared>,
    owned: Arc<Owned>,
    order: Box<str>,
    state: OrderState,
    jobs: Vec<Job>,
    cancel: watch::Receiver<bool>,
) -> OrderDone {
    let mut run = Run {
        shared: &shared,
        owned: &owned,
        state,
        done: Vec::with_capacity(jobs.len()),
        cancel,
    };
    let partition = owned.partition;
    let mut i = 0;
    while i < jobs.len() && !*run.cancel.borrow() {
        let job = &jobs[i];
        let before = run.state.clone();
        let outcome = run.state.apply(&job.event, &shared.defaults);
        let span = (job.record.offset, job.event.event_id.as_str());
        // A restored state whose body was written ahead but never acknowledged is posted even
        // when the redelivered event is a duplicate of it.
        let (post_due, changed) = match &outcome {
            Outcome::Ignored(why) => {
                shared
                    .metrics
                    .events_ignored
                    .with_label_values(&[why.as_str()])
                    .inc();
                tracing::debug!(partition, offset = span.0, out_order_no = %order, event_id = span.1, reason = why.as_str(), "event ignored");
                (run.state.post_due(), false)
            }
            Outcome::Applied { post_due } => (*post_due, true),
            Outcome::Rejected(_) => (false, false),
        };
        if let Outcome::Rejected(r) = outcome {
            let failure = Failure {
                reason: r.dead_letter_reason(),
                detail: r.detail(),
                attempts: 0,
                answer: None,
            };
            if !run
                .dead_letter_group(std::slice::from_ref(job), &failure)
                .await
            {
                break;
            }
        } else if !post_due {
            if changed && !run.write_state(&order).await {
                break;
            }
            run.done.push(job.record.offset);
        } else {
            // Coalesce later events of the same status into this post (SPEC §4).
            let start = i;
            let mut changed = changed;
            while i + 1 < jobs.len() {
                let mut trial = run.state.clone();
                let status = run.state.snapshot.status;
                let next = trial.apply(&jobs[i + 1].event, &shared.defaults);
                match next {
                    Outcome::Applied { .. } | Outcome::Ignored(_)
                        if trial
                            .snapshot
                            .status
                            .zip(status)
                            .is_some_and(|(a, b)| may_coalesce(b, a)) =>
                    {
                        changed |= matches!(next, Outcome::Applied { .. });
                        run.state = trial;
                        i += 1;
                    }
                    _ => break,
                }
            }
            if !post(&mut run, &order, &jobs[start..=i], before, changed).await {
                break;
            }
        }
        i += 1;
    }
    OrderDone {
        order,
        state: run.state,
        done: run.done,
    }
}

/// Post the current state for `group` (write-ahead first when it `changed`); false when the
/// partition is being given up.
async fn post(
    run: &mut Run<'_>,
    order: &str,
    group: &[Job],
    before: OrderState,
    changed: bool,
) -> bool {
    let Some(body) = run.state.body() else {
        return true;
    };
    if run.state.is_acked(&body) {
        // Coalescing may land on the acknowledged body again: nothing to send.
        return (!changed || run.write_state(order).await) && {
            run.done.extend(group.iter().map(|j| j.record.offset));
            true
        };
    }
    crash_point(CrashPoint::PanicInTask);
    // Write-ahead: the state this post reports is durable before the request exists. Also when
    // nothing changed (a restored body posted again): the durable digest must become unknown.
    if !run.write_ahead(order).await {
        return false;
    }
    crash_point(CrashPoint::BeforePost);
    let partition = run.owned.partition;
    let delivered = run
        .shared
        .delivery
        .deliver(&body, &mut run.cancel, &run.owned.requests)
        .await;
    match delivered {
        Delivered::Acknowledged { attempts } => {
            crash_point(CrashPoint::AfterAck);
            let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            run.state.mark_acked(&body, now_ms as u64);
            // Debug, not info: the normal path, thousands a second per pod; the metrics count it.
            tracing::debug!(partition, out_order_no = %order, offset = group.last().map(|j| j.record.offset), status = %body.status, attempts, events = group.len(), "acknowledged by WeChat Pay");
            // The acknowledged digest follows off the order's critical path (its state, and so
            // every event of the group, is already durable). A final (PAY_SUCCESS) one is queued
            // now, ahead of the order's next record: the sweep's retention clock starts from it.
            // Any other rides on the order's next record: losing it costs at most a duplicate
            // post of the same body after a crash, and saves a changelog write per post.
            if body.status == crate::snapshot::Status::PaySuccess {
                run.owned
                    .sink
                    .queue_state(order, &run.state.record_bytes(order));
            }
            run.done.extend(group.iter().map(|j| j.record.offset));
            true
        }
        Delivered::Rejected {
            rejection,
            attempts,
        } => {
            let detail = rejection.error.as_ref().map_or_else(
                || format!("HTTP {}", rejection.status),
                |e| format!("{}: {}", e.code, e.message),
            );
            let failure = Failure {
                reason: Reason::Rejected,
                detail,
                attempts,
                answer: Some(&rejection),
            };
            undo(run, order, before, changed).await && run.dead_letter_group(group, &failure).await
        }
        Delivered::Exhausted { last, attempts } => {
            let answer = last.status.map(|status| crate::wechatpay::Rejection {
                status,
                error: last.error.clone(),
                request_id: None,
            });
            let failure = Failure {
                reason: Reason::RetriesExhausted,
                detail: format!("{} after {attempts} attempts", last.cause.label()),
                attempts,
                answer: answer.as_ref(),
            };
            undo(run, order, before, changed).await && run.dead_letter_group(group, &failure).await
        }
        Delivered::Cancelled => false,
    }
}

/// A post ends in dead letters: the state before the group is durable again (so a replayed dead
/// letter still applies) before the group's offsets are done.
///
/// When the verdict arrives while the partition is being given up, the previous state is still
/// queued (ordered behind the write-ahead record, answered within the drain bound) but nothing is
/// dead-lettered: the next owner restores the previous state and redoes the events.
async fn undo(run: &mut Run<'_>, order: &str, before: OrderState, changed: bool) -> bool {
    run.state = before;
    if !changed {
        return true;
    }
    if *run.cancel.borrow() {
        run.owned
            .sink
            .queue_state(order, &run.state.record_bytes(order));
        return false;
    }
    run.write_state(order).await
}
