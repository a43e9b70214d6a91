//! Delivering one body to WeChat Pay: a fresh signature per attempt, retries with exponential
//! backoff and full jitter (`Retry-After` honoured), a circuit breaker shared by every request
//! (while it is open nothing counts toward the retry budget, so an outage never produces dead
//! letters), a send-rate limiter that backs off on 429, a global bound on posts in flight, and
//! configuration faults (401) that pause everything until WeChat Pay accepts us again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use super::lease::Lease;
use crate::retry::{Backoff, BreakerState, CircuitBreaker, RateLimiter};
use crate::snapshot::Body;
use crate::telemetry::metrics::{status_label, Metrics};
use crate::telemetry::Health;
use crate::wechatpay::{Disposition, Rejection, Transient, WechatPayClient};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Verified 204.
    Acknowledged {
        /// Attempts made.
        attempts: u32,
    },
    /// WeChat Pay refused the body: dead-letter as `rejected`.
    Rejected {
        /// WeChat Pay's answer.
        rejection: Rejection,
        /// Attempts made.
        attempts: u32,
    },
    /// Transient failures past the budget while the breaker was closed: `retries_exhausted`.
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
    /// Attempts (while the breaker is closed) before `retries_exhausted`.
    pub max_attempts: u32,
    /// Retry interval during a configuration fault.
    pub config_fault_retry: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_threshold: u32,
    /// Breaker cooldown.
    pub breaker_cooldown: Duration,
    /// Posts in flight at once.
    pub max_in_flight: usize,
    /// Send-rate limit (0 = none until a 429).
    pub max_rate_per_second: f64,
}

/// Shared by every partition of the process.
pub struct Delivery {
    client: WechatPayClient,
    settings: DeliverySettings,
    breaker: Mutex<CircuitBreaker>,
    limiter: Mutex<RateLimiter>,
    permits: Semaphore,
    health: Arc<Health>,
    metrics: Metrics,
    lease: Arc<Lease>,
    /// True while consumption should be paused (breaker not closed, or a configuration fault).
    paused: watch::Sender<bool>,
}

/// An admitted attempt whose outcome is not recorded yet: dropped armed, it abandons.
struct Admitted<'a> {
    breaker: &'a Mutex<CircuitBreaker>,
    armed: bool,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_abandoned();
        }
    }
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

/// Sleep for `d` unless cancelled first; true when cancelled.
async fn sleep_or_cancel(d: Duration, cancel: &mut watch::Receiver<bool>) -> bool {
    if *cancel.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.wait_for(|c| *c) => true,
    }
}

impl Delivery {
    /// The delivery machinery over `client`.
    pub fn new(
        client: WechatPayClient,
        settings: DeliverySettings,
        health: Arc<Health>,
        metrics: Metrics,
        lease: Arc<Lease>,
    ) -> Self {
        let now = Instant::now();
        Self {
            breaker: Mutex::new(CircuitBreaker::new(
                settings.breaker_threshold,
                settings.breaker_cooldown,
            )),
            limiter: Mutex::new(RateLimiter::new(settings.max_rate_per_second, now)),
            permits: Semaphore::new(settings.max_in_flight.max(1)),
            client,
            settings,
            health,
            metrics,
            lease,
            paused: watch::channel(false).0,
        }
    }

    /// Watch whether consumption should be paused.
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }

    /// Current breaker state.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state(Instant::now())
    }

    fn update_paused(&self) {
        let state = self.breaker_state();
        self.metrics.breaker_state.set(state.as_gauge());
        self.metrics
            .config_fault
            .set(i64::from(self.health.config_fault()));
        let paused = self.health.config_fault() || state != BreakerState::Closed;
        self.paused
            .send_if_modified(|p| std::mem::replace(p, paused) != paused);
    }

    /// WeChat Pay accepted our signature and answered about the body: the breaker closes and any
    /// configuration fault is over.
    fn wechatpay_answered(&self) {
        self.breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .on_success();
        self.health.set_config_fault(false);
        self.update_paused();
    }

    /// Wait until the breaker lets a request through and the rate limiter has a token.
    async fn admit(&self, cancel: &mut watch::Receiver<bool>) -> bool {
        loop {
            let wait = {
                let now = Instant::now();
                let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
                if !breaker.try_acquire(now) {
                    Some(Duration::from_millis(100))
                } else {
                    match self
                        .limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .try_take(now)
                    {
                        Ok(()) => None,
                        Err(w) => {
                            breaker.on_abandoned();
                            Some(w.max(Duration::from_millis(1)))
                        }
                    }
                }
            };
            match wait {
                None => return true,
                Some(w) => {
                    self.update_paused();
                    if sleep_or_cancel(w, cancel).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Deliver `body` until acknowledged, rejected, exhausted, or cancelled. `on_wire` counts the
    /// partition's requests on the wire while one is.
    pub async fn deliver(
        &self,
        body: &Body,
        cancel: &mut watch::Receiver<bool>,
        on_wire: &AtomicUsize,
    ) -> Delivered {
        let mut attempts = 0u32;
        let mut counted = 0u32;
        loop {
            if *cancel.borrow() || !self.admit(cancel).await {
                self.breaker
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .on_abandoned();
                return Delivered::Cancelled;
            }
            let closed_before = self.breaker_state() == BreakerState::Closed;
            // Admitted: until an outcome is recorded, giving up (cancellation, or the task being
            // aborted at the drain bound) must release a half-open probe, or the breaker would
            // stay half-open with no probe for good.
            let mut admitted = Admitted {
                breaker: &self.breaker,
                armed: true,
            };
            // The wait for a permit races cancellation: a revoked partition sends nothing more.
            let permit = tokio::select! {
                p = self.permits.acquire() => p,
                _ = cancel.wait_for(|c| *c) => return Delivered::Cancelled,
            };
            // Last check before the request exists: still ours, and not suspended past the lease.
            if *cancel.borrow() || !self.lease.holds() {
                return Delivered::Cancelled;
            }
            let attempt = {
                let _on_wire = OnWire::new(on_wire, &self.metrics);
                let a = self.client.sync_status(body.bytes.clone()).await;
                drop(permit);
                a
            };
            // Every branch below records the outcome with the breaker.
            admitted.armed = false;
            attempts += 1;
            self.metrics
                .post_duration
                .observe(attempt.elapsed.as_secs_f64());
            self.metrics
                .posts
                .with_label_values(&[attempt.disposition.label(), status_label(attempt.status)])
                .inc();
            let now = Instant::now();
            match attempt.disposition {
                Disposition::Delivered => {
                    self.wechatpay_answered();
                    return Delivered::Acknowledged { attempts };
                }
                Disposition::Permanent(rejection) => {
                    // A refusal of this body: WeChat Pay itself works.
                    self.wechatpay_answered();
                    return Delivered::Rejected {
                        rejection,
                        attempts,
                    };
                }
                Disposition::ConfigFault(r) => {
                    self.breaker
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .on_abandoned();
                    if !self.health.config_fault() {
                        tracing::error!(status = r.status, code = ?r.error.as_ref().map(|e| &e.code), "WeChat Pay refused our signature: configuration fault (key, serial, mchid, clock or URL); pausing all partitions, not ready, retrying slowly");
                    }
                    self.health.set_config_fault(true);
                    self.update_paused();
                    if sleep_or_cancel(self.settings.config_fault_retry, cancel).await {
                        return Delivered::Cancelled;
                    }
                }
                Disposition::Transient(t) => {
                    if let crate::wechatpay::TransientCause::Unverified(e) = &t.cause {
                        self.metrics
                            .signature_failures
                            .with_label_values(&[e.label()])
                            .inc();
                        if *e != crate::wechatpay::VerifyError::SignTestProbe {
                            tracing::warn!(reason = e.label(), error = %e, "2xx response whose signature did not verify: retrying (possible tampering)");
                        }
                    }
                    {
                        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
                        breaker.on_failure(now);
                    }
                    if t.cause == crate::wechatpay::TransientCause::Throttled {
                        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
                        limiter.on_throttled(now);
                        self.metrics
                            .send_rate_limit
                            .set(limiter.rate().round() as i64);
                        tracing::warn!(
                            rate = limiter.rate(),
                            "WeChat Pay answered 429: send rate lowered"
                        );
                    }
                    self.update_paused();
                    if closed_before {
                        counted += 1;
                    }
                    if counted >= self.settings.max_attempts
                        && self.breaker_state() == BreakerState::Closed
                    {
                        return Delivered::Exhausted { last: t, attempts };
                    }
                    let delay = self.settings.backoff.delay(
                        counted,
                        t.retry_after,
                        &mut rand::thread_rng(),
                    );
                    self.metrics
                        .retries
                        .with_label_values(&[t.cause.label()])
                        .inc();
                    tracing::debug!(cause = t.cause.label(), status = ?t.status, attempts, delay_ms = delay.as_millis() as u64, "retrying");
                    if sleep_or_cancel(delay, cancel).await {
                        return Delivered::Cancelled;
                    }
                }
            }
        }
    }
}
