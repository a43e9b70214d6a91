//! Retry policy, circuit breaker and send-rate limiter. Pure: time and randomness are passed in.

use std::time::Duration;

use rand::Rng;

use crate::clock::Instant;

/// Exponential backoff with full jitter: attempt `n` waits a uniform random time in
/// `[0, min(max, initial × 2ⁿ)]`, or the server's `Retry-After` when that is longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

/// Why a backoff could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backoff: initial ({initial:?}) must be > 0 and ≤ max ({max:?})")]
pub struct InvalidBackoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Refuses a zero initial delay or one above the maximum.
    pub fn try_new(initial: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if initial.is_zero() || initial > max {
            return Err(InvalidBackoff { initial, max });
        }
        Ok(Self { initial, max })
    }

    /// The ceiling of attempt `attempt` (0-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `attempt`; `retry_after` (capped at `max`) is a floor.
    pub fn delay<R: Rng>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = Duration::from_nanos(
            rng.gen_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64),
        );
        jittered.max(retry_after.map_or(Duration::ZERO, |r| r.min(self.max)))
    }
}

/// Circuit breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// WeChat Pay looks down: consumption paused, nothing dead-lettered for transient errors.
    Open,
    /// The cooldown is over: one probe decides.
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// When the breaker opens: at least `min_failures` failures within `window`, and failures at
/// least `failure_rate` of the outcomes there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failures in the window before the rate is trusted.
    pub min_failures: u32,
    /// Share of failures in the window that opens the breaker, in `(0, 1]`.
    pub failure_rate: f64,
    /// How far back outcomes count.
    pub window: Duration,
    /// How long the breaker stays open before a probe.
    pub cooldown: Duration,
}

/// Outcomes in a sliding window of `BUCKETS` buckets.
#[derive(Debug, Clone)]
struct Window {
    bucket: Duration,
    start: Instant,
    /// `(bucket index, successes, failures)`, oldest first.
    buckets: std::collections::VecDeque<(u64, u32, u32)>,
}

const BUCKETS: u32 = 10;

impl Window {
    fn new(window: Duration, now: Instant) -> Self {
        Self {
            bucket: (window / BUCKETS).max(Duration::from_millis(1)),
            start: now,
            buckets: std::collections::VecDeque::new(),
        }
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_nanos() / self.bucket.as_nanos()) as u64
    }

    fn prune(&mut self, now: Instant) {
        let current = self.index(now);
        while self
            .buckets
            .front()
            .is_some_and(|(i, _, _)| current.saturating_sub(*i) >= u64::from(BUCKETS))
        {
            self.buckets.pop_front();
        }
    }

    fn record(&mut self, now: Instant, success: bool) {
        self.prune(now);
        let i = self.index(now);
        if self.buckets.back().is_none_or(|(b, _, _)| *b != i) {
            self.buckets.push_back((i, 0, 0));
        }
        if let Some((_, s, f)) = self.buckets.back_mut() {
            if success {
                *s = s.saturating_add(1);
            } else {
                *f = f.saturating_add(1);
            }
        }
    }

    /// `(successes, failures)` within the window at `now`.
    fn counts(&mut self, now: Instant) -> (u64, u64) {
        self.prune(now);
        self.buckets.iter().fold((0, 0), |(s, f), (_, bs, bf)| {
            (s + u64::from(*bs), f + u64::from(*bf))
        })
    }
}

/// A half-open probe slot, held by whoever sends the probe; returned with its outcome.
#[derive(Debug)]
#[must_use = "a probe must end with success, failure or abandon"]
pub struct ProbeSlot(());

/// A breaker over the failure rate of a sliding window (not consecutive failures: during a
/// brownout every success would close that one, and events could spend their retry budget one
/// flap at a time). Open → after `cooldown` half-open → one probe; its success closes the breaker
/// (the window keeps its evidence, so a brownout reopens it at the next failure).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    window: Window,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy, now: Instant) -> Self {
        Self {
            policy,
            window: Window::new(policy.window, now),
            opened_at: None,
            probe_in_flight: false,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.saturating_duration_since(t) >= self.policy.cooldown => {
                BreakerState::HalfOpen
            }
            Some(_) => BreakerState::Open,
        }
    }

    /// Since when the breaker has been open (or half-open), if it is.
    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Requests other than probes may be sent only while closed.
    pub fn allows(&self, now: Instant) -> bool {
        self.state(now) == BreakerState::Closed
    }

    /// The half-open probe slot, if the breaker is half-open and nobody holds it.
    pub fn try_probe(&mut self, now: Instant) -> Option<ProbeSlot> {
        if self.state(now) != BreakerState::HalfOpen || self.probe_in_flight {
            return None;
        }
        self.probe_in_flight = true;
        Some(ProbeSlot(()))
    }

    /// WeChat Pay answered (delivered, or refused a body for its content): closes the breaker.
    pub fn on_success(&mut self, now: Instant) {
        self.window.record(now, true);
        self.opened_at = None;
    }

    /// A request failed transiently (5xx, timeout, connection).
    pub fn on_failure(&mut self, now: Instant) {
        self.window.record(now, false);
        if self.opened_at.is_some() {
            return;
        }
        if self.failing(now) {
            self.opened_at = Some(now);
        }
    }

    /// The probe ended: its outcome moves the breaker, and the slot is free again.
    pub fn end_probe(&mut self, slot: ProbeSlot, now: Instant, success: bool) {
        let ProbeSlot(()) = slot;
        self.probe_in_flight = false;
        if success {
            self.on_success(now);
        } else {
            self.window.record(now, false);
            self.opened_at = Some(now);
        }
    }

    /// The probe was abandoned without an answer.
    pub fn abandon_probe(&mut self, slot: ProbeSlot) {
        let ProbeSlot(()) = slot;
        self.probe_in_flight = false;
    }

    fn failing(&mut self, now: Instant) -> bool {
        let (s, f) = self.window.counts(now);
        f >= u64::from(self.policy.min_failures.max(1))
            && f as f64 >= self.policy.failure_rate * (s + f) as f64
    }

    /// Does a transient failure recorded just now count toward its event's retry budget? Only
    /// when other requests demonstrably succeed: the breaker is closed and successes outnumber
    /// failures in the window by the policy's rate (SPEC §7: dead-letter only what keeps
    /// failing while other requests succeed).
    pub fn counts_toward_budget(&mut self, now: Instant) -> bool {
        if self.opened_at.is_some() {
            return false;
        }
        let (s, f) = self.window.counts(now);
        s > 0 && (f as f64) < self.policy.failure_rate * (s + f) as f64
    }
}

/// Send-rate limiter: a token bucket whose rate halves on a 429 — at most once per
/// `HALVING_INTERVAL`, so a burst of concurrent 429s (one per request in flight) is one signal,
/// not hundreds — and, a second after the last 429, recovers additively by 5 % per second of its
/// reference: the configured rate, or, when unlimited (0), the send rate measured when the first
/// 429 of the episode arrived (so a 429 at 1,800 posts/s halves to 900/s, not to a fixed floor,
/// and the limit is lifted again once the rate is back there).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    configured: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
    last_throttle: Option<Instant>,
    last_halving: Option<Instant>,
    /// What recovery steps are a share of, and where an unlimited limiter is lifted again.
    reference: f64,
    /// Sends counted since `counting_since`, and the rate measured over the previous second.
    sent: u32,
    counting_since: Instant,
    measured: f64,
}

/// The least time between two halvings of the send rate.
pub const HALVING_INTERVAL: Duration = Duration::from_secs(1);

/// The first limit of an unlimited limiter when no send rate was measured yet.
const FLOOR_ON_429: f64 = 50.0;

impl RateLimiter {
    /// `per_second` 0 = unlimited.
    pub fn new(per_second: f64, now: Instant) -> Self {
        Self {
            configured: per_second,
            rate: per_second,
            tokens: per_second.max(1.0),
            last: now,
            last_throttle: None,
            last_halving: None,
            reference: per_second,
            sent: 0,
            counting_since: now,
            measured: 0.0,
        }
    }

    /// The current rate (0 = unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn count_send(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.counting_since);
        if elapsed >= Duration::from_secs(1) {
            self.measured = f64::from(self.sent) / elapsed.as_secs_f64();
            self.sent = 0;
            self.counting_since = now;
        }
        self.sent = self.sent.saturating_add(1);
    }

    /// The send rate of about the last second.
    fn measured_rate(&self, now: Instant) -> f64 {
        let elapsed = now
            .saturating_duration_since(self.counting_since)
            .max(Duration::from_secs(1));
        self.measured
            .max(f64::from(self.sent) / elapsed.as_secs_f64())
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.rate == 0.0 {
            return;
        }
        let recovering = self
            .last_throttle
            .is_some_and(|t| now.saturating_duration_since(t) > HALVING_INTERVAL);
        if recovering {
            let target = if self.configured > 0.0 {
                self.configured
            } else {
                self.reference
            };
            self.rate = (self.rate + self.reference * 0.05 * dt).min(target);
            if self.configured == 0.0 && self.rate >= self.reference {
                self.rate = 0.0;
                return;
            }
        }
        self.tokens = (self.tokens + self.rate * dt).min(self.rate.max(1.0));
    }

    /// Take a token; `Err(wait)` says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.rate == 0.0 {
            self.count_send(now);
            return Ok(());
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.count_send(now);
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }

    /// WeChat Pay answered 429: halve the rate, unless it was halved less than
    /// `HALVING_INTERVAL` ago (the 429s of one burst are one signal). True when it was halved.
    pub fn on_throttled(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.last_throttle = Some(now);
        if self
            .last_halving
            .is_some_and(|t| now.saturating_duration_since(t) < HALVING_INTERVAL)
        {
            return false;
        }
        self.last_halving = Some(now);
        let base = if self.rate > 0.0 {
            self.rate
        } else {
            // Unlimited: start from what was actually sent.
            let base = self.measured_rate(now).max(FLOOR_ON_429 * 2.0);
            self.reference = base;
            base
        };
        self.rate = (base / 2.0).max(1.0);
        self.tokens = self.tokens.min(1.0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_bounded_jittered_and_honours_retry_after() {
        assert!(Backoff::try_new(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(Backoff::try_new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        let b = Backoff::try_new(Duration::from_millis(100), Duration::from_secs(5)).unwrap();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(40), Duration::from_secs(5));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: Vec<_> = (0..200).map(|_| b.delay(4, None, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1600)));
        assert!(
            delays.iter().any(|d| *d < Duration::from_millis(400)),
            "full jitter reaches low values"
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(3)), &mut rng),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(60)), &mut rng),
            Duration::from_secs(5),
            "capped"
        );
    }

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            min_failures: 3,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(2),
        }
    }

    #[test]
    fn breaker_opens_on_the_failure_rate_probes_after_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        b.on_failure(t0);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed, "below min_failures");
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.allows(t0) && b.try_probe(t0 + Duration::from_secs(1)).is_none());
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.state(t2), BreakerState::HalfOpen);
        let probe = b.try_probe(t2).expect("half-open: one probe");
        assert!(b.try_probe(t2).is_none(), "one probe at a time");
        assert!(!b.allows(t2), "only the probe is sent while half-open");
        b.end_probe(probe, t2, false);
        assert_eq!(b.state(t2), BreakerState::Open, "a failed probe reopens");
        let t4 = t2 + Duration::from_secs(2);
        let probe = b.try_probe(t4).unwrap();
        b.end_probe(probe, t4, true);
        assert_eq!(b.state(t4), BreakerState::Closed);
        assert!(
            !b.counts_toward_budget(t4),
            "the window still remembers the outage"
        );
        b.on_failure(t4);
        assert_eq!(b.state(t4), BreakerState::Open, "the rate is still high");
    }

    #[test]
    fn only_the_slot_holder_can_release_a_probe() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        (0..3).for_each(|_| b.on_failure(t0));
        let t2 = t0 + Duration::from_secs(2);
        let probe = b.try_probe(t2).unwrap();
        // Anyone else's success or failure does not free the slot (the old `on_abandoned` of a
        // cancelled task did).
        b.on_failure(t2);
        assert!(b.try_probe(t2 + Duration::from_secs(5)).is_none());
        b.abandon_probe(probe);
        assert!(b.try_probe(t2 + Duration::from_secs(5)).is_some());
    }

    #[test]
    fn a_brownout_never_counts_toward_a_budget_and_flapping_does_not_reset_the_evidence() {
        // 80 % failures, one success in five, over a minute: the breaker may close on a success,
        // but no failure ever counts toward an event's budget.
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        let mut counted = 0;
        for i in 0..6_000u64 {
            let now = t0 + Duration::from_millis(10 * i);
            if i % 5 == 0 {
                b.on_success(now);
            } else {
                b.on_failure(now);
                counted += u32::from(b.counts_toward_budget(now));
            }
        }
        assert_eq!(counted, 0);
    }

    #[test]
    fn a_lone_failing_body_counts_while_others_succeed() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        let mut counted = 0;
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(100 * i);
            if i % 10 == 0 {
                b.on_failure(now);
                counted += u32::from(b.counts_toward_budget(now));
            } else {
                b.on_success(now);
            }
        }
        assert_eq!(b.state(t0 + Duration::from_secs(10)), BreakerState::Closed);
        assert_eq!(
            counted, 9,
            "every failure but the first (no success seen yet) counts"
        );
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(policy(), t0);
        b.on_failure(t0);
        b.on_failure(t0);
        let later = t0 + Duration::from_secs(11);
        b.on_failure(later);
        assert_eq!(
            b.state(later),
            BreakerState::Closed,
            "two of the three aged out"
        );
    }

    #[test]
    fn rate_limiter_halves_on_429_and_recovers() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100.0, t0);
        assert!(r.on_throttled(t0));
        assert_eq!(r.rate(), 50.0);
        // A storm: 256 concurrent 429s within the interval halve the rate once.
        for i in 0..256u64 {
            assert!(!r.on_throttled(t0 + Duration::from_millis(i)));
        }
        assert_eq!(r.rate(), 50.0);
        assert!(r.on_throttled(t0 + HALVING_INTERVAL));
        assert_eq!(r.rate(), 25.0);
        let later = t0 + Duration::from_secs(11);
        let _ = r.try_take(later);
        assert!(r.rate() > 25.0 && r.rate() <= 100.0, "{}", r.rate());
        let mut unlimited = RateLimiter::new(0.0, t0);
        assert!((0..2_000).all(|_| unlimited.try_take(t0).is_ok()));
        unlimited.on_throttled(t0);
        assert_eq!(unlimited.rate(), 1_000.0, "half of the 2,000/s measured");
        assert!(unlimited.try_take(t0).is_ok());
        assert!(unlimited.try_take(t0).is_err(), "limited after a 429");
        // Without another 429 it recovers by 5 % of 2,000/s per second and is lifted at 2,000/s.
        let _ = unlimited.try_take(t0 + Duration::from_secs(5));
        assert!(unlimited.rate() > 1_000.0, "{}", unlimited.rate());
        let _ = unlimited.try_take(t0 + Duration::from_secs(30));
        assert_eq!(unlimited.rate(), 0.0, "unlimited again");
        let mut fresh = RateLimiter::new(0.0, t0);
        fresh.on_throttled(t0);
        assert_eq!(fresh.rate(), 50.0, "nothing measured yet: the floor");
    }
}
