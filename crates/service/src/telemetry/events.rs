//! Notable occurrences as events, after Vector's internal events: each is one value whose
//! [`Emit::emit`] writes its log line and moves its metric together, so the two can never
//! disagree (a metric moved without its line, a line with a label the metric lacks). Fields are
//! plain values and bounded labels, so telemetry imports nothing of the pipeline; label sets are
//! derived from the enums that own them (`Reason::ALL`, `Ignored::ALL`, `TransientCause::each`,
//! `VerifyError::each`) where the metrics are registered. Each line keeps the target of the
//! stage it reports on (`catering_sync_service::pipeline::order`, `::delivery`, …), so `RUST_LOG`
//! directives by module select it as before.

use catering_sync_core::apiv3::request_id_code;

use super::labels::{
    CertificateTrigger, DownloadOutcome, Endpoint, Fencing, KeyReload, Probe, ProbeOutcome,
    StateTopic, WriteFailure,
};
use super::metrics::Metrics;

/// An occurrence that logs and counts itself.
pub trait Emit {
    /// Write the log line and move the metric.
    fn emit(self, metrics: &Metrics);
}

/// A dead letter the broker acknowledged.
#[derive(Debug)]
pub struct DeadLettered<'a> {
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The order, when known.
    pub out_order_no: Option<&'a str>,
    /// `Reason::as_str`.
    pub reason: &'static str,
    /// What went wrong.
    pub detail: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// WeChat Pay's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// WeChat Pay's `Request-ID` of the last answer, when it sent one.
    pub request_id: Option<&'a str>,
}

impl Emit for DeadLettered<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.dead_letters.with_label_values(&[self.reason]).inc();
        tracing::warn!(
            target: "catering_sync_service::pipeline::order",
            partition = self.partition,
            offset = self.offset,
            out_order_no = self.out_order_no.unwrap_or(""),
            reason = self.reason,
            error = %self.detail,
            attempts = self.attempts,
            http_status = self.http_status,
            request_id = self.request_id,
            request_id_code = self.request_id.and_then(request_id_code),
            "dead-lettered"
        );
    }
}

/// An event that was not applied (duplicate, stale): counted, never dead-lettered.
#[derive(Debug)]
pub struct EventIgnored<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The order.
    pub out_order_no: &'a str,
    /// The event.
    pub event_id: &'a str,
    /// `Ignored::as_str`.
    pub reason: &'static str,
}

impl Emit for EventIgnored<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .events_ignored
            .with_label_values(&[self.reason])
            .inc();
        tracing::debug!(
            target: "catering_sync_service::pipeline::order",
            partition = self.partition,
            offset = self.offset,
            out_order_no = %self.out_order_no,
            event_id = self.event_id,
            reason = self.reason,
            "event ignored"
        );
    }
}

/// A transient failure whose retry is scheduled.
#[derive(Debug)]
pub struct Retrying<'a> {
    /// `TransientCause::label`.
    pub cause: &'static str,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Attempts so far.
    pub attempts: u32,
    /// Attempts that counted toward the budget.
    pub counted: u32,
    /// The wait before the next attempt, in milliseconds.
    pub delay_ms: u64,
    /// WeChat Pay's `Request-ID`, when it answered with one.
    pub request_id: Option<&'a str>,
}

impl Emit for Retrying<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics.retries.with_label_values(&[self.cause]).inc();
        tracing::debug!(
            target: "catering_sync_service::pipeline::delivery",
            cause = self.cause,
            status = ?self.status,
            attempts = self.attempts,
            counted = self.counted,
            delay_ms = self.delay_ms,
            request_id = self.request_id,
            request_id_code = self.request_id.and_then(request_id_code),
            "retrying"
        );
    }
}

/// A 2xx whose signature did not verify.
pub struct Unverified<'a> {
    /// `VerifyError::label`.
    pub reason: &'static str,
    /// The verification error.
    pub error: &'a dyn std::error::Error,
    /// A `WECHATPAY/SIGNTEST/` probe: counted, not logged (unverified by design).
    pub signtest: bool,
    /// The answer's `Request-ID`, when it had one.
    pub request_id: Option<&'a str>,
}

impl Emit for Unverified<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .signature_failures
            .with_label_values(&[self.reason])
            .inc();
        if !self.signtest {
            tracing::warn!(
                target: "catering_sync_service::pipeline::delivery",
                reason = self.reason,
                error = %self.error,
                request_id = self.request_id,
                request_id_code = self.request_id.and_then(request_id_code),
                "2xx response whose signature did not verify: retrying (possible tampering)"
            );
        }
    }
}

/// A 429 that lowered the send rate.
#[derive(Debug)]
pub struct RateLowered {
    /// The new rate, posts per second.
    pub rate: f64,
}

impl Emit for RateLowered {
    fn emit(self, metrics: &Metrics) {
        metrics.send_rate_limit.set(self.rate.round() as i64);
        tracing::warn!(
            target: "catering_sync_service::pipeline::delivery",
            rate = self.rate,
            "WeChat Pay answered 429: send rate lowered"
        );
    }
}

/// A probe of WeChat Pay and what it got.
#[derive(Debug)]
pub struct Probed {
    /// Which probe.
    pub probe: Probe,
    /// What it got.
    pub outcome: ProbeOutcome,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
}

impl Emit for Probed {
    fn emit(self, metrics: &Metrics) {
        metrics
            .probes
            .with_label_values(&[self.probe.as_str(), self.outcome.as_str()])
            .inc();
        tracing::info!(
            target: "catering_sync_service::pipeline::delivery",
            probe = self.probe.as_str(),
            outcome = self.outcome.as_str(),
            status = ?self.status,
            "WeChat Pay probed"
        );
    }
}

/// A changelog or dead-letter write the broker refused or did not acknowledge.
#[derive(Debug)]
pub struct StateWriteFailed<'a> {
    /// The topic written.
    pub topic: StateTopic,
    /// Why, as a bounded kind.
    pub kind: WriteFailure,
    /// What was written (`changelog record`, `dead letter`, …).
    pub what: &'static str,
    /// The source partition whose state it is.
    pub partition: i32,
    /// Retrying will not cure it (the pod is not ready while it lasts).
    pub permanent: bool,
    /// A dead letter too large for its topic (a truncated copy is written instead of a retry),
    /// or a changelog record too large with its delivery history (written again without it).
    pub truncating: bool,
    /// The producer's error.
    pub error: &'a dyn std::error::Error,
}

impl Emit for StateWriteFailed<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .state_write_failures
            .with_label_values(&[self.topic.as_str(), self.kind.as_str()])
            .inc();
        if self.truncating && self.topic == StateTopic::Changelog {
            tracing::warn!(
                target: "catering_sync_service::state::sink",
                error = %self.error,
                partition = self.partition,
                "changelog record too large with its delivery history: writing it without the history (order show will not list those posts)"
            );
        } else if self.truncating {
            tracing::warn!(
                target: "catering_sync_service::state::sink",
                error = %self.error,
                partition = self.partition,
                "dead letter too large for the topic: writing a truncated copy"
            );
        } else {
            tracing::error!(
                target: "catering_sync_service::state::sink",
                error = %self.error,
                what = self.what,
                partition = self.partition,
                permanent = self.permanent,
                "write to Kafka failed; retrying (offsets are not committed past it)"
            );
        }
    }
}

/// Partitions revoked without a drain: the session timed out or the poll interval was exceeded,
/// so another member may own them already.
#[derive(Debug)]
pub struct AssignmentLost<'a> {
    /// The input partitions lost.
    pub partitions: &'a [i32],
}

impl Emit for AssignmentLost<'_> {
    fn emit(self, metrics: &Metrics) {
        metrics
            .fencing
            .with_label_values(&[Fencing::AssignmentLost.as_str()])
            .inc();
        tracing::warn!(
            target: "catering_sync_service::pipeline::consumer",
            partitions = ?self.partitions,
            "assignment lost (session timeout or poll interval exceeded): aborting the partitions' work, committing nothing"
        );
    }
}

/// A partition's drain reached its bound (or its assignment was lost): its tasks are aborted.
#[derive(Debug)]
pub struct DrainAborted {
    /// The input partition.
    pub partition: i32,
    /// Order tasks still running.
    pub tasks: usize,
    /// Requests of theirs on the wire (a request or a write may still land).
    pub requests_on_the_wire: usize,
}

impl Emit for DrainAborted {
    fn emit(self, metrics: &Metrics) {
        metrics
            .fencing
            .with_label_values(&[Fencing::DrainAborted.as_str()])
            .inc();
        tracing::warn!(
            target: "catering_sync_service::pipeline::partition",
            partition = self.partition,
            tasks = self.tasks,
            requests_on_the_wire = self.requests_on_the_wire,
            "drain bound reached or assignment lost: aborting the partition's tasks"
        );
    }
}

/// A reload of the keys, and how it ended.
#[derive(Debug)]
pub struct KeysReloaded<'a> {
    /// `sighup` or `files_changed`.
    pub trigger: &'static str,
    /// The merchant serial now in use, when it succeeded.
    pub merchant_serial: Option<&'a str>,
    /// Why it failed (the keys in use are kept).
    pub error: Option<&'a dyn std::error::Error>,
}

impl Emit for KeysReloaded<'_> {
    fn emit(self, metrics: &Metrics) {
        let outcome = if self.error.is_none() {
            KeyReload::Ok
        } else {
            KeyReload::Failed
        };
        metrics
            .key_reloads
            .with_label_values(&[outcome.as_str()])
            .inc();
        match self.error {
            None => tracing::info!(
                target: "catering_sync_service::keys",
                trigger = self.trigger,
                merchant_serial = self.merchant_serial.unwrap_or(""),
                "keys reloaded: in use from the next request"
            ),
            Some(e) => tracing::error!(
                target: "catering_sync_service::keys",
                trigger = self.trigger,
                error = %e,
                "key reload failed: keeping the keys in use"
            ),
        }
    }
}

/// A platform-certificate download ended.
#[derive(Debug)]
pub struct CertificatesDownloaded<'a> {
    /// What started it.
    pub trigger: CertificateTrigger,
    /// How many certificates are held now, when it succeeded.
    pub held: Option<usize>,
    /// Why it failed (the certificates held are kept).
    pub error: Option<&'a dyn std::error::Error>,
}

impl Emit for CertificatesDownloaded<'_> {
    fn emit(self, metrics: &Metrics) {
        let outcome = match self.error {
            None => DownloadOutcome::Ok,
            Some(_) => DownloadOutcome::Failed,
        };
        metrics
            .certificate_downloads
            .with_label_values(&[self.trigger.as_str(), outcome.as_str()])
            .inc();
        match self.error {
            None => tracing::info!(
                target: "catering_sync_service::wechatpay::platform",
                trigger = self.trigger.as_str(),
                certificates = self.held.unwrap_or(0),
                "platform certificates downloaded"
            ),
            Some(e) => tracing::error!(
                target: "catering_sync_service::wechatpay::platform",
                trigger = self.trigger.as_str(),
                error = %e,
                "platform certificate download failed: keeping the certificates held"
            ),
        }
    }
}

/// Requests go to another WeChat Pay endpoint from now on.
#[derive(Debug)]
pub struct EndpointSwitched<'a> {
    /// The endpoint now in use.
    pub now: Endpoint,
    /// Why.
    pub cause: &'a str,
}

impl Emit for EndpointSwitched<'_> {
    fn emit(self, metrics: &Metrics) {
        for e in Endpoint::ALL {
            metrics
                .endpoint_active
                .with_label_values(&[e.as_str()])
                .set(i64::from(*e == self.now));
        }
        tracing::warn!(
            target: "catering_sync_service::wechatpay::client",
            endpoint = self.now.as_str(),
            cause = self.cause,
            "WeChat Pay endpoint switched"
        );
    }
}
