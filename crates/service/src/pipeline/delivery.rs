//! Delivering one body to WeChat Pay: a fresh signature per attempt, retries with exponential
//! backoff and full jitter (`Retry-After` honoured), a circuit breaker over the failure rate of a
//! sliding window shared by every request (a failure counts toward an event's retry budget only
//! while other requests succeed, so neither an outage nor a brownout produces dead letters), a
//! send-rate limiter that backs off on 429 (once per interval), a global bound on posts in
//! flight, and deployment faults (401, 403 `NO_AUTH`, 404/405, header-level 400) that pause
//! everything until WeChat Pay accepts us again.
//!
//! Probing never depends on a pending event: a background prober sends the half-open probe of
//! the breaker, and the deployment-fault probe while no body waits, as a deliberately empty
//! body (`{}`) that WeChat Pay can only answer with 400 `PARAM_ERROR` once it is up and accepts
//! our signature; it never changes any order. While bodies wait in a deployment fault, one of
//! them at a time is the probe (a fault of one sub-merchant shows only on its own orders).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Semaphore};

use super::lease::Lease;
use crate::clock::{Cancel, Instant};
use crate::retry::{Backoff, BreakerPolicy, BreakerState, CircuitBreaker, ProbeSlot, RateLimiter};
use crate::snapshot::Body;
use crate::telemetry::events::{self, Emit as _};
use crate::telemetry::labels::{Probe, ProbeOutcome};
use crate::telemetry::metrics::{status_label, Metrics};
use crate::telemetry::Health;
use crate::wechatpay::{Disposition, Rejection, Transient, TransientCause, WechatPayClient};
use catering_sync_core::apiv3::request_id_code;

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Verified 204.
    Acknowledged {
        /// Attempts made.
        attempts: u32,
        /// WeChat Pay's `Request-ID` of the 204.
        request_id: Option<String>,
    },
    /// WeChat Pay refused the body: dead-letter as `rejected`.
    Rejected {
        /// WeChat Pay's answer.
        rejection: Rejection,
        /// Attempts made.
        attempts: u32,
    },
    /// Transient failures past the budget while other requests succeeded: `retries_exhausted`.
    Exhausted {
        /// The last failure.
        last: Transient,
        /// Attempts made.
        attempts: u32,
    },
    /// The partition was revoked or the service is stopping: give up without a verdict.
    Cancelled,
}

/// Settings of the delivery machinery.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Counted attempts (failures while other requests succeed) before `retries_exhausted`.
    pub max_attempts: u32,
    /// Probe interval during a deployment fault.
    pub config_fault_retry: Duration,
    /// When the breaker opens, and its cooldown.
    pub breaker: BreakerPolicy,
    /// Posts in flight at once.
    pub max_in_flight: usize,
    /// Send-rate limit (0 = none until a 429).
    pub max_rate_per_second: f64,
}

/// The body of a probe: WeChat Pay answers it 400 `PARAM_ERROR` when it is up and accepts our
/// signature, and it can never change an order.
pub const PROBE_BODY: &[u8] = b"{}";

/// Shared by every partition of the process.
pub struct Delivery {
    client: WechatPayClient,
    settings: DeliverySettings,
    breaker: Mutex<CircuitBreaker>,
    limiter: Mutex<RateLimiter>,
    /// Posts in flight, process-wide (shared by every merchant's delivery).
    permits: Arc<Semaphore>,
    /// The signing merchant this delivery posts for.
    mchid: String,
    /// Every merchant's fault and breaker state, for consumption, readiness and the gauges.
    board: Arc<super::merchants::Board>,
    metrics: Metrics,
    lease: Arc<Lease>,
    /// True while this merchant is in a deployment fault (its bodies wait; consumption pauses
    /// once every merchant is).
    paused: watch::Sender<bool>,
    /// True while the breaker is not closed: bodies wait on it.
    held_back: watch::Sender<bool>,
    /// During a deployment fault: when the next probe may go.
    next_fault_probe: Mutex<Instant>,
    /// Bodies waiting for a deployment fault to end.
    waiting_in_fault: AtomicUsize,
}

/// A request on the wire: counted for its partition and in the gauge until it ends or its task
/// is aborted.
struct OnWire<'a> {
    count: &'a AtomicUsize,
    metrics: &'a Metrics,
}

impl<'a> OnWire<'a> {
    fn new(count: &'a AtomicUsize, metrics: &'a Metrics) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        metrics.posts_in_flight.inc();
        Self { count, metrics }
    }
}

impl Drop for OnWire<'_> {
    fn drop(&mut self) {
        self.metrics.posts_in_flight.dec();
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The breaker's half-open probe slot while the prober holds it: dropped without an outcome (the
/// prober's task aborted), it is released, so the breaker can never stay half-open unprobed.
struct HeldProbe<'a> {
    breaker: &'a Mutex<CircuitBreaker>,
    slot: Option<ProbeSlot>,
}

impl HeldProbe<'_> {
    fn end(mut self, success: bool) {
        if let Some(slot) = self.slot.take() {
            lock(self.breaker).end_probe(slot, Instant::now(), success);
        }
    }
}

impl Drop for HeldProbe<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            lock(self.breaker).abandon_probe(slot);
        }
    }
}

/// Counts a body waiting for a deployment fault to end.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Self(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a body must wait for before its next attempt.
enum Gate {
    /// Send now.
    Go,
    /// The breaker is open or half-open: wait until it closes.
    Breaker,
    /// A deployment fault: wait until it ends or this body's turn to probe comes.
    Fault(Duration),
    /// The rate limiter has no token yet.
    Rate(Duration),
}

/// What one attempt's outcome means for the body's loop.
enum Step {
    Done(Delivered),
    Retry(Duration),
    /// A deployment fault: wait in the gate.
    Fault,
}

impl Delivery {
    /// The delivery machinery of a single merchant over `client`, with its prober running.
    pub fn start(
        client: WechatPayClient,
        settings: DeliverySettings,
        health: Arc<Health>,
        metrics: Metrics,
        lease: Arc<Lease>,
    ) -> Arc<Self> {
        let board = super::merchants::Board::new(health, metrics.clone(), 1);
        let permits = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        Self::start_for(client, settings, metrics, lease, board, permits)
    }

    /// The delivery machinery of one of several merchants (`board` and `permits` shared).
    pub fn start_for(
        client: WechatPayClient,
        settings: DeliverySettings,
        metrics: Metrics,
        lease: Arc<Lease>,
        board: Arc<super::merchants::Board>,
        permits: Arc<Semaphore>,
    ) -> Arc<Self> {
        let now = Instant::now();
        let mchid = client.key_store().current().credentials.mchid.clone();
        let delivery = Arc::new(Self {
            breaker: Mutex::new(CircuitBreaker::new(settings.breaker, now)),
            limiter: Mutex::new(RateLimiter::new(settings.max_rate_per_second, now)),
            permits,
            mchid,
            board,
            client,
            settings,
            metrics,
            lease,
            paused: watch::channel(false).0,
            held_back: watch::channel(false).0,
            next_fault_probe: Mutex::new(now),
            waiting_in_fault: AtomicUsize::new(0),
        });
        tokio::spawn(probe_loop(Arc::downgrade(&delivery)));
        delivery
    }

    /// Watch whether consumption should be paused (every merchant in a deployment fault).
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.board.paused()
    }

    /// Whether this merchant is in a deployment fault.
    fn in_fault(&self) -> bool {
        *self.paused.borrow()
    }

    fn set_fault(&self, fault: bool) {
        self.paused
            .send_if_modified(|p| std::mem::replace(p, fault) != fault);
    }

    /// Current breaker state.
    pub fn breaker_state(&self) -> BreakerState {
        lock(&self.breaker).state(Instant::now())
    }

    fn update_paused(&self) {
        let now = Instant::now();
        let (state, opened_at) = {
            let b = lock(&self.breaker);
            (b.state(now), b.opened_at())
        };
        let open_secs = opened_at.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let fault = self.in_fault();
        self.board
            .report(&self.mchid, fault, state.as_gauge(), open_secs);
        // An open breaker holds back sending, not fetching: each partition keeps fetching until
        // its bounded buffer is full (backpressure pauses it then), so events that arrive
        // during an outage — after a rebalance too — are there to go the moment a probe
        // closes the breaker, and a lone failing body cannot keep every other order from being
        // read. A deployment fault pauses consumption.
        let held_back = state != BreakerState::Closed;
        self.held_back
            .send_if_modified(|h| std::mem::replace(h, held_back) != held_back);
    }

    /// WeChat Pay accepted our signature and answered about a body: the breaker closes and any
    /// deployment fault is over.
    fn wechatpay_answered(&self) {
        lock(&self.breaker).on_success(Instant::now());
        self.fault_over();
    }

    fn fault_over(&self) {
        if self.in_fault() {
            tracing::info!(
                mchid = %self.mchid,
                "WeChat Pay accepts our requests again: deployment fault over, resuming"
            );
        }
        self.set_fault(false);
        self.update_paused();
    }

    /// A deployment fault: pause everything, not ready, probe at the retry interval.
    fn enter_fault(&self, r: &Rejection) {
        if !self.in_fault() {
            tracing::error!(mchid = %self.mchid, status = r.status, code = ?r.error.as_ref().map(|e| &e.code), request_id = ?r.request_id, request_id_code = ?r.request_id.as_deref().and_then(request_id_code), "WeChat Pay refused the deployment (key, serial, mchid, clock, permission, IP allow-list, URL or headers): pausing all partitions, not ready, probing every {:?}", self.settings.config_fault_retry);
        }
        *lock(&self.next_fault_probe) = Instant::now() + self.settings.config_fault_retry;
        self.set_fault(true);
        self.update_paused();
    }

    /// Take this body's turn to probe a deployment fault, if it is due.
    fn take_fault_probe(&self, now: Instant) -> Result<(), Duration> {
        let mut next = lock(&self.next_fault_probe);
        if *next > now {
            return Err(*next - now);
        }
        *next = now + self.settings.config_fault_retry;
        Ok(())
    }

    fn gate(&self, now: Instant) -> Gate {
        if self.in_fault() {
            return match self.take_fault_probe(now) {
                Ok(()) => Gate::Go,
                Err(wait) => Gate::Fault(wait),
            };
        }
        if !lock(&self.breaker).allows(now) {
            return Gate::Breaker;
        }
        match lock(&self.limiter).try_take(now) {
            Ok(()) => Gate::Go,
            Err(w) => Gate::Rate(w.max(Duration::from_millis(1))),
        }
    }

    /// Wait until this body may be sent; false when cancelled.
    async fn admit(&self, cancel: &mut Cancel) -> bool {
        loop {
            let (wait, mut until) = match self.gate(Instant::now()) {
                Gate::Go => return true,
                Gate::Rate(w) => {
                    if cancel.sleep(w).await {
                        return false;
                    }
                    continue;
                }
                Gate::Breaker => (Duration::from_secs(1), self.held_back.subscribe()),
                Gate::Fault(w) => (w, self.paused.subscribe()),
            };
            if cancel.is_cancelled() {
                return false;
            }
            let _waiting = self
                .in_fault()
                .then(|| Waiting::new(&self.waiting_in_fault));
            // The prober closes the breaker and ends a fault; wake on that, or when the wait is
            // up.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = until.wait_for(|held| !*held) => {}
                _ = cancel.cancelled() => return false,
            }
        }
    }

    /// Deliver `body` until acknowledged, rejected, exhausted, or cancelled. `on_wire` counts the
    /// partition's requests on the wire while one is.
    pub async fn deliver(
        &self,
        body: &Body,
        cancel: &mut Cancel,
        on_wire: &AtomicUsize,
    ) -> Delivered {
        let mut attempts = 0u32;
        let mut counted = 0u32;
        let mut uncounted = 0u32;
        loop {
            if cancel.is_cancelled() || !self.admit(cancel).await {
                return Delivered::Cancelled;
            }
            // The wait for a permit races cancellation: a revoked partition sends nothing more.
            let permit = tokio::select! {
                p = self.permits.acquire() => p,
                _ = cancel.cancelled() => return Delivered::Cancelled,
            };
            // Last check before the request exists: still ours, and not suspended past the lease.
            if cancel.is_cancelled() || !self.lease.holds() {
                return Delivered::Cancelled;
            }
            let attempt = {
                let _on_wire = OnWire::new(on_wire, &self.metrics);
                let a = self.client.sync_status(body.bytes.clone()).await;
                drop(permit);
                a
            };
            attempts += 1;
            self.metrics
                .post_duration
                .observe(attempt.elapsed.as_secs_f64());
            self.metrics
                .posts
                .with_label_values(&[attempt.disposition.label(), status_label(attempt.status)])
                .inc();
            let step = self.judge(attempt.disposition, attempts, &mut counted, &mut uncounted);
            match step {
                Step::Done(Delivered::Acknowledged { attempts, .. }) => {
                    return Delivered::Acknowledged {
                        attempts,
                        request_id: attempt.request_id,
                    }
                }
                Step::Done(d) => return d,
                Step::Fault => {}
                Step::Retry(delay) => {
                    if cancel.sleep(delay).await {
                        return Delivered::Cancelled;
                    }
                }
            }
        }
    }

    /// What an attempt's outcome means: record it with the breaker, the limiter and the
    /// budget.
    fn judge(
        &self,
        disposition: Disposition,
        attempts: u32,
        counted: &mut u32,
        uncounted: &mut u32,
    ) -> Step {
        match disposition {
            Disposition::Delivered => {
                self.wechatpay_answered();
                Step::Done(Delivered::Acknowledged {
                    attempts,
                    request_id: None,
                })
            }
            Disposition::Permanent(rejection) => {
                // A refusal of this body: WeChat Pay itself works.
                self.wechatpay_answered();
                Step::Done(Delivered::Rejected {
                    rejection,
                    attempts,
                })
            }
            Disposition::ConfigFault(r) => {
                self.enter_fault(&r);
                Step::Fault
            }
            Disposition::Transient(t) => self.transient(t, attempts, counted, uncounted),
        }
    }

    fn transient(
        &self,
        t: Transient,
        attempts: u32,
        counted: &mut u32,
        uncounted: &mut u32,
    ) -> Step {
        let now = Instant::now();
        self.note_unverified(&t);
        let counts = if t.cause == TransientCause::Throttled {
            // WeChat Pay is up and asks us to slow down: neither an outage nor this body's
            // fault, so it moves the send rate, not the breaker or the budget.
            self.throttled(now);
            false
        } else {
            let mut breaker = lock(&self.breaker);
            breaker.on_failure(now);
            breaker.counts_toward_budget(now)
        };
        self.update_paused();
        if counts {
            *counted += 1;
        } else {
            *uncounted = uncounted.saturating_add(1);
        }
        if *counted >= self.settings.max_attempts {
            return Step::Done(Delivered::Exhausted { last: t, attempts });
        }
        // Failures that did not count raise the backoff a little (the breaker already keeps
        // them from hammering), so a body retries soon after an outage ends.
        let exponent = *counted + (*uncounted).min(3);
        let delay = self
            .settings
            .backoff
            .delay(exponent, t.retry_after, &mut rand::thread_rng());
        events::Retrying {
            cause: t.cause.label(),
            status: t.status,
            request_id: t.request_id.as_deref(),
            attempts,
            counted: *counted,
            delay_ms: delay.as_millis() as u64,
        }
        .emit(&self.metrics);
        Step::Retry(delay)
    }

    fn note_unverified(&self, t: &Transient) {
        if let TransientCause::Unverified(e) = &t.cause {
            events::Unverified {
                reason: e.label(),
                error: e,
                request_id: t.request_id.as_deref(),
                signtest: *e == crate::wechatpay::VerifyError::SignTestProbe,
            }
            .emit(&self.metrics);
        }
    }

    fn throttled(&self, now: Instant) {
        let mut limiter = lock(&self.limiter);
        if limiter.on_throttled(now) {
            events::RateLowered {
                rate: limiter.rate(),
            }
            .emit(&self.metrics);
        }
    }

    /// One probe, if one is due and nothing else can probe: the breaker's half-open probe
    /// always; a deployment fault's only while no body waits to probe it.
    async fn probe_if_due(&self) {
        let now = Instant::now();
        let slot = lock(&self.breaker).try_probe(now);
        if let Some(slot) = slot {
            let held = HeldProbe {
                breaker: &self.breaker,
                slot: Some(slot),
            };
            let answered = self.probe(Probe::Breaker).await;
            held.end(answered);
            self.update_paused();
            return;
        }
        let idle_fault = self.in_fault()
            && self.waiting_in_fault.load(Ordering::SeqCst) == 0
            && self.take_fault_probe(now).is_ok();
        if idle_fault && self.probe(Probe::DeploymentFault).await {
            lock(&self.breaker).on_success(Instant::now());
            self.update_paused();
        }
    }

    /// Send the probe body; true when WeChat Pay answered (up, whatever it said of the body).
    async fn probe(&self, what: Probe) -> bool {
        let attempt = self
            .client
            .sync_status(Bytes::from_static(PROBE_BODY))
            .await;
        let (outcome, answered) = match &attempt.disposition {
            Disposition::Delivered | Disposition::Permanent(_) => {
                self.fault_over();
                (ProbeOutcome::Answered, true)
            }
            Disposition::ConfigFault(r) => {
                self.enter_fault(r);
                (ProbeOutcome::DeploymentFault, true)
            }
            Disposition::Transient(t) if t.cause == TransientCause::Throttled => {
                (ProbeOutcome::Throttled, true)
            }
            Disposition::Transient(_) => (ProbeOutcome::Failed, false),
        };
        events::Probed {
            probe: what,
            outcome,
            status: attempt.status,
        }
        .emit(&self.metrics);
        answered
    }
}

/// Keeps the breaker's gauges fresh and sends the probes nothing else would; ends with the
/// delivery machinery.
async fn probe_loop(delivery: Weak<Delivery>) {
    let tick = match delivery.upgrade() {
        Some(d) => (d
            .settings
            .breaker
            .cooldown
            .min(d.settings.config_fault_retry)
            / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1)),
        None => return,
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(d) = delivery.upgrade() else { return };
        d.update_paused();
        d.probe_if_due().await;
    }
}

/// The gate in virtual time: nothing here sleeps for real, and no request is sent.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Canceller;
    use crate::wechatpay::{ClientConfig, Credentials, MerchantKey, VerificationKeys};

    fn delivery(
        max_rate_per_second: f64,
        config_fault_retry: Duration,
        cooldown: Duration,
    ) -> Arc<Delivery> {
        let keys =
            catering_sync_sandbox::keygen::generate("1900000001", &mut rand::thread_rng()).unwrap();
        let credentials = Credentials::new(
            keys.mchid.clone(),
            keys.merchant_serial.clone(),
            MerchantKey::from_pem(&keys.merchant_private_pem).unwrap(),
        );
        let client = WechatPayClient::new(
            &ClientConfig {
                // Nothing listens there; the gate tests never get as far as a request.
                base_url: "http://127.0.0.1:9".into(),
                ..ClientConfig::default()
            },
            Arc::new(credentials),
            Arc::new(VerificationKeys::new()),
        )
        .unwrap();
        let settings = DeliverySettings {
            backoff: crate::retry::Backoff::try_new(
                Duration::from_millis(100),
                Duration::from_secs(10),
            )
            .unwrap(),
            max_attempts: 5,
            config_fault_retry,
            breaker: BreakerPolicy {
                min_failures: 5,
                failure_rate: 0.5,
                window: Duration::from_secs(30),
                cooldown,
            },
            max_in_flight: 8,
            max_rate_per_second,
        };
        let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
        Delivery::start(
            client,
            settings,
            Arc::new(Health::default()),
            metrics,
            Lease::new(Duration::from_secs(3600)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limit_spaces_admissions_in_virtual_time() {
        let d = delivery(5.0, Duration::from_secs(30), Duration::from_secs(5));
        let mut cancel = Cancel::never();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(d.admit(&mut cancel).await);
        }
        assert_eq!(Instant::now(), t0, "the first second's tokens go at once");
        for _ in 0..20 {
            assert!(d.admit(&mut cancel).await);
        }
        let spent = Instant::now() - t0;
        assert!(
            (Duration::from_millis(3_990)..=Duration::from_millis(4_010)).contains(&spent),
            "20 more at 5/s take 4 s of virtual time, took {spent:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deployment_fault_admits_one_body_per_probe_interval_and_cancellation_at_once() {
        let retry = Duration::from_secs(30);
        let d = delivery(0.0, retry, Duration::from_secs(5));
        let t0 = Instant::now();
        // As `enter_fault` does, without a request: the fault, its first probe time, paused.
        d.set_fault(true);
        *lock(&d.next_fault_probe) = t0 + retry;
        d.update_paused();
        let stop = Canceller::new();
        let cancel = stop.token();
        let admitted = |d: Arc<Delivery>, mut cancel: Cancel| {
            tokio::spawn(async move { d.admit(&mut cancel).await.then(Instant::now) })
        };
        let a = admitted(d.clone(), cancel.clone());
        let b = admitted(d.clone(), cancel.clone());
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        let (first, second) = (a.min(b), a.max(b));
        assert_eq!(
            first - t0,
            retry,
            "the first body probes when the interval is up"
        );
        assert_eq!(
            second - t0,
            2 * retry,
            "the next one waits for the next turn"
        );

        let c = admitted(d.clone(), cancel);
        tokio::time::advance(Duration::from_secs(10)).await;
        stop.cancel();
        assert_eq!(c.await.unwrap(), None, "cancelled, not admitted");
        assert!(Instant::now() - t0 < 3 * retry);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_holds_bodies_back_until_it_closes() {
        // A cooldown of an hour: no probe is due within the test, so nothing is sent.
        let d = delivery(0.0, Duration::from_secs(30), Duration::from_secs(3600));
        let t0 = Instant::now();
        for _ in 0..5 {
            lock(&d.breaker).on_failure(t0);
        }
        d.update_paused();
        assert_eq!(d.breaker_state(), BreakerState::Open);
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move { d.admit(&mut Cancel::never()).await.then(Instant::now) })
        };
        // Sleeping (not `advance`) lets every timer inside the 10 minutes fire and the waiting
        // task run after each, so a probe or admission that came due would have happened.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !waiting.is_finished(),
            "held back while the breaker is open"
        );
        let mut probes = 0;
        for p in Probe::ALL {
            for o in ProbeOutcome::ALL {
                probes += d
                    .metrics
                    .probes
                    .with_label_values(&[p.as_str(), o.as_str()])
                    .get();
            }
        }
        assert_eq!(probes, 0, "no probe is due within the cooldown");
        // What a successful probe does: the breaker closes and the waiting body goes at once.
        d.wechatpay_answered();
        let admitted = waiting.await.unwrap().expect("admitted");
        assert_eq!(admitted - t0, Duration::from_secs(600));
        assert_eq!(d.breaker_state(), BreakerState::Closed);
    }
}
