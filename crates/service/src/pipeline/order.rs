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

use super::delivery::Delivered;
use super::kafka::InRecord;
use super::lease::{crash_point, CrashPoint};
use super::partition::Owned;
use super::Shared;
use crate::clock::Cancel;
use crate::dead_letter::{self, Failure, Reason, Source};
use crate::event::OrderEvent;
use crate::plan::{self, Step};
use crate::snapshot::{Body, Ignored, OrderState};
use crate::state::Sink;
use crate::telemetry::events::{self, Emit as _};
use crate::wechatpay::Rejection;

/// One decoded event waiting for its order.
#[derive(Debug, Clone)]
pub struct Job {
    /// The record as received.
    pub record: Arc<InRecord>,
    /// The decoded event.
    pub event: OrderEvent,
}

impl AsRef<OrderEvent> for Job {
    fn as_ref(&self) -> &OrderEvent {
        &self.event
    }
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
    cancel: &mut Cancel,
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
        crate::clock::utc_now(),
    );
    let ok = sink.dead_letter(&dl, cancel).await.is_ok();
    if ok {
        events::DeadLettered {
            partition: record.partition,
            offset: record.offset,
            out_order_no,
            reason: failure.reason.as_str(),
            detail: &failure.detail,
            attempts: failure.attempts,
            http_status: failure.answer.map(|a| a.status),
            request_id: failure.answer.and_then(|a| a.request_id.as_deref()),
        }
        .emit(&shared.metrics);
    }
    ok
}

struct Run<'a> {
    shared: &'a Shared,
    owned: &'a Arc<Owned>,
    state: OrderState,
    done: Vec<i64>,
    cancel: Cancel,
}

impl Run<'_> {
    fn ignored(&self, order: &str, job: &Job, why: Ignored) {
        events::EventIgnored {
            partition: self.owned.partition,
            offset: job.record.offset,
            out_order_no: order,
            event_id: &job.event.event_id,
            reason: why.as_str(),
        }
        .emit(&self.shared.metrics);
    }

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
        let deliveries = self.state.deliveries.header_value();
        self.owned
            .sink
            .write_state_with(order, value, deliveries.as_deref(), &mut self.cancel)
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

/// Process `jobs` of one order in sequence: the core's [`plan::next`] decides each step, this
/// executes it. Stops early when `cancel` fires (the partition is being given up): what is not
/// done is redone by the next owner.
pub async fn process(
    shared: Arc<Shared>,
    owned: Arc<Owned>,
    order: Box<str>,
    state: OrderState,
    jobs: Vec<Job>,
    cancel: Cancel,
) -> OrderDone {
    let mut run = Run {
        shared: &shared,
        owned: &owned,
        state,
        done: Vec::with_capacity(jobs.len()),
        cancel,
    };
    let mut i = 0;
    while i < jobs.len() && !run.cancel.is_cancelled() {
        let step = plan::next(&mut run.state, &jobs[i..], &shared.defaults);
        let group = &jobs[i..i + step.events()];
        if !execute(&mut run, &order, group, step).await {
            break;
        }
        i += group.len();
    }
    OrderDone {
        order,
        state: run.state,
        done: run.done,
    }
}

/// Carry out one step of the plan for `group`; false when the partition is being given up.
async fn execute(run: &mut Run<'_>, order: &str, group: &[Job], step: Step) -> bool {
    let job = &group[0];
    match step {
        Step::DeadLetter(r) => {
            let failure = Failure {
                reason: r.dead_letter_reason(),
                detail: r.detail(),
                attempts: 0,
                answer: None,
            };
            run.dead_letter_group(group, &failure).await
        }
        Step::Done { ignored, changed } => {
            if let Some(why) = ignored {
                run.ignored(order, job, why);
            }
            if changed && !run.write_state(order).await {
                return false;
            }
            run.done.push(job.record.offset);
            true
        }
        Step::Post {
            ignored,
            changed,
            before,
            body,
            ..
        } => {
            if let Some(why) = ignored {
                run.ignored(order, job, why);
            }
            post(run, order, group, *before, changed, body).await
        }
    }
}

/// Post `body`, the current state's, for `group` (write-ahead first when it `changed`); false
/// when the partition is being given up.
async fn post(
    run: &mut Run<'_>,
    order: &str,
    group: &[Job],
    before: OrderState,
    changed: bool,
    body: Body,
) -> bool {
    if run.state.is_acked(&body) {
        // Coalescing may land on the acknowledged body again: nothing to send.
        return (!changed || run.write_state(order).await) && {
            run.done.extend(group.iter().map(|j| j.record.offset));
            true
        };
    }
    let delivery = match run.shared.merchants.route(&run.state) {
        Ok(d) => d.clone(),
        Err(no) => {
            let failure = Failure {
                reason: Reason::UnknownMerchant,
                detail: no.to_string(),
                attempts: 0,
                answer: None,
            };
            return undo(run, order, before, changed).await
                && run.dead_letter_group(group, &failure).await;
        }
    };
    crash_point(CrashPoint::PanicInTask);
    // Write-ahead: the state this post reports is durable before the request exists. Also when
    // nothing changed (a restored body posted again): the durable digest must become unknown.
    if !run.write_ahead(order).await {
        return false;
    }
    crash_point(CrashPoint::BeforePost);
    let delivered = delivery
        .deliver(&body, &mut run.cancel, &run.owned.requests)
        .await;
    match delivered {
        Delivered::Acknowledged {
            attempts,
            request_id,
        } => {
            acknowledged(run, order, group, &body, attempts, request_id);
            true
        }
        Delivered::Cancelled => false,
        failed => {
            let Some((reason, detail, attempts, answer)) = verdict(failed) else {
                return false;
            };
            let failure = Failure {
                reason,
                detail,
                attempts,
                answer: answer.as_ref(),
            };
            undo(run, order, before, changed).await && run.dead_letter_group(group, &failure).await
        }
    }
}

/// Why a post that ended without a verified 204 is dead-lettered: the reason, the detail, the
/// attempts and WeChat Pay's answer when there was one (`None` for any other outcome).
fn verdict(delivered: Delivered) -> Option<(Reason, String, u32, Option<Rejection>)> {
    match delivered {
        Delivered::Rejected {
            rejection,
            attempts,
        } => {
            let detail = rejection.error.as_ref().map_or_else(
                || format!("HTTP {}", rejection.status),
                |e| format!("{}: {}", e.code, e.message),
            );
            Some((Reason::Rejected, detail, attempts, Some(rejection)))
        }
        Delivered::Exhausted { last, attempts } => {
            let answer = last.status.map(|status| Rejection {
                status,
                error: last.error.clone(),
                request_id: last.request_id.clone(),
            });
            let detail = format!("{} after {attempts} attempts", last.cause.label());
            Some((Reason::RetriesExhausted, detail, attempts, answer))
        }
        Delivered::Acknowledged { .. } | Delivered::Cancelled => None,
    }
}

/// A verified 204 for `body`: the state knows it, and the group's offsets are done.
fn acknowledged(
    run: &mut Run<'_>,
    order: &str,
    group: &[Job],
    body: &Body,
    attempts: u32,
    request_id: Option<String>,
) {
    crash_point(CrashPoint::AfterAck);
    let now_ms = crate::clock::unix_millis();
    run.state.mark_acked(body, now_ms);
    run.state.deliveries.push(crate::snapshot::Delivery::new(
        body.status,
        now_ms,
        request_id.as_deref(),
    ));
    observe_event_age(&run.shared.metrics.event_age, group, now_ms);
    // Debug, not info: the normal path, thousands a second per pod; the metrics count it.
    tracing::debug!(partition = run.owned.partition, out_order_no = %order, offset = group.last().map(|j| j.record.offset), status = %body.status, attempts, events = group.len(), "acknowledged by WeChat Pay");
    // The acknowledged digest follows off the order's critical path (its state, and so every
    // event of the group, is already durable). A final (PAY_SUCCESS) one is queued now, ahead of
    // the order's next record: the sweep's retention clock starts from it. Any other rides on
    // the order's next record: losing it costs at most a duplicate post of the same body after a
    // crash, and saves a changelog write per post.
    if body.status == crate::snapshot::Status::PaySuccess {
        run.owned.sink.queue_state_with(
            order,
            &run.state.record_bytes(order),
            run.state.deliveries.header_value().as_deref(),
        );
    }
    run.done.extend(group.iter().map(|j| j.record.offset));
}

/// The age of each event of `group` (now − `occurred_at`) at the 204 that carried it: how fresh
/// orders reach WeChat Pay. An `occurred_at` in the future (a producer's clock ahead) counts as 0.
fn observe_event_age(age: &prometheus::Histogram, group: &[Job], now_ms: u64) {
    use time::format_description::well_known::Rfc3339;
    for job in group {
        if let Ok(at) = time::OffsetDateTime::parse(&job.event.occurred_at, &Rfc3339) {
            let at_ms = at.unix_timestamp_nanos() / 1_000_000;
            let ms = (i128::from(now_ms) - at_ms).max(0);
            age.observe(ms as f64 / 1000.0);
        }
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
    if run.cancel.is_cancelled() {
        run.owned.sink.queue_state_with(
            order,
            &run.state.record_bytes(order),
            run.state.deliveries.header_value().as_deref(),
        );
        return false;
    }
    run.write_state(order).await
}
