//! Processing the queued events of one order, strictly in sequence: apply, post when due (with
//! status-preserving coalescing), write the changelog, or dead-letter. An offset is reported done
//! only when its event is acknowledged by a verified 204 and its state is durable in the
//! changelog, or it needed no post and its state is durable, or its dead letter is acknowledged.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::delivery::Delivered;
use super::kafka::InRecord;
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
    let ok = shared.sink.dead_letter(&dl, cancel).await.is_ok();
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
    sink: &'a Sink,
    partition: i32,
    state: OrderState,
    done: Vec<i64>,
    cancel: watch::Receiver<bool>,
}

impl Run<'_> {
    async fn write_state(&mut self, order: &str) -> bool {
        let value = self.state.record_bytes(order);
        self.sink
            .write_state(self.partition, order, &value, &mut self.cancel)
            .await
            .is_ok()
    }

    /// Dead-letter every job of a group that could not be delivered; true when all are written.
    async fn dead_letter_group(&mut self, group: &[Job], failure: &Failure<'_>) -> bool {
        for job in group {
            if !dead_letter(
                self.shared,
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
    partition: i32,
    order: Box<str>,
    state: OrderState,
    jobs: Vec<Job>,
    cancel: watch::Receiver<bool>,
) -> OrderDone {
    let sink = shared.sink.clone();
    let mut run = Run {
        shared: &shared,
        sink: &sink,
        partition,
        state,
        done: Vec::with_capacity(jobs.len()),
        cancel,
    };
    let mut i = 0;
    while i < jobs.len() && !*run.cancel.borrow() {
        let job = &jobs[i];
        let before = run.state.clone();
        let outcome = run.state.apply(&job.event, &shared.defaults);
        let span = (job.record.offset, job.event.event_id.as_str());
        match outcome {
            Outcome::Ignored(why) => {
                shared
                    .metrics
                    .events_ignored
                    .with_label_values(&[why.as_str()])
                    .inc();
                tracing::debug!(partition, offset = span.0, out_order_no = %order, event_id = span.1, reason = why.as_str(), "event ignored");
                run.done.push(job.record.offset);
            }
            Outcome::Rejected(r) => {
                let failure = Failure {
                    reason: if r.reason() == "status_regression" {
                        Reason::StatusRegression
                    } else {
                        Reason::InvalidSnapshot
                    },
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
            }
            Outcome::Applied { post_due: false } => {
                if !run.write_state(&order).await {
                    break;
                }
                run.done.push(job.record.offset);
            }
            Outcome::Applied { post_due: true } => {
                // Coalesce later events of the same status into this post (SPEC §4).
                let start = i;
                while i + 1 < jobs.len() {
                    let mut trial = run.state.clone();
                    let status = run.state.snapshot.status;
                    match trial.apply(&jobs[i + 1].event, &shared.defaults) {
                        Outcome::Applied { .. } | Outcome::Ignored(_)
                            if trial
                                .snapshot
                                .status
                                .zip(status)
                                .is_some_and(|(a, b)| may_coalesce(b, a)) =>
                        {
                            run.state = trial;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                if !post(&mut run, &order, &jobs[start..=i], before).await {
                    break;
                }
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

/// Post the current state for `group`; false when the partition is being given up.
async fn post(run: &mut Run<'_>, order: &str, group: &[Job], before: OrderState) -> bool {
    let Some(body) = run.state.body() else {
        return true;
    };
    if run.state.is_acked(&body) {
        // Coalescing may land on the acknowledged body again: nothing to send.
        return run.write_state(order).await && {
            run.done.extend(group.iter().map(|j| j.record.offset));
            true
        };
    }
    let partition = run.partition;
    match run.shared.delivery.deliver(&body, &mut run.cancel).await {
        Delivered::Acknowledged { attempts } => {
            let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            run.state.mark_acked(&body, now_ms as u64);
            // Debug, not info: the normal path, thousands a second per pod; the metrics count it.
            tracing::debug!(partition, out_order_no = %order, offset = group.last().map(|j| j.record.offset), status = %body.status, attempts, events = group.len(), "acknowledged by WeChat Pay");
            if !run.write_state(order).await {
                return false;
            }
            run.done.extend(group.iter().map(|j| j.record.offset));
            true
        }
        Delivered::Rejected {
            rejection,
            attempts,
        } => {
            run.state = before;
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
            run.dead_letter_group(group, &failure).await
        }
        Delivered::Exhausted { last, attempts } => {
            run.state = before;
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
            run.dead_letter_group(group, &failure).await
        }
        Delivered::Cancelled => false,
    }
}
