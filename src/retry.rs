//! Retry policy, circuit breaker and send-rate limiter. Pure: time and randomness are passed in.

use std::time::{Duration, Instant};

use rand::Rng;

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
    /// One probe at a time decides.
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

/// Opens after `threshold` consecutive transient failures; after `cooldown` lets one probe
/// through; closes on a success.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            consecutive_failures: 0,
            opened_at: None,
            probe_in_flight: false,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.duration_since(t) >= self.cooldown => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// May a request be sent now? In half-open, only one probe at a time.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.probe_in_flight => false,
            BreakerState::HalfOpen => {
                self.probe_in_flight = true;
                true
            }
        }
    }

    /// A request was delivered (or rejected for its own content: WeChat Pay is up).
    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.probe_in_flight = false;
    }

    /// A request failed transiently.
    pub fn on_failure(&mut self, now: Instant) {
        self.probe_in_flight = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.opened_at.is_some() || self.consecutive_failures >= self.threshold {
            self.opened_at = Some(now);
        }
    }

    /// A request was abandoned without an answer (e.g. its partition was revoked).
    pub fn on_abandoned(&mut self) {
        self.probe_in_flight = false;
    }
}

/// Send-rate limiter: a token bucket whose rate halves on a 429 and recovers by 5 % of the
/// configured rate per second without one (AIMD). A configured rate of 0 means unlimited until
/// the first 429, which starts limiting at `floor_on_429`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    configured: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
    last_throttle: Option<Instant>,
    floor_on_429: f64,
}

impl RateLimiter {
    /// `per_second` 0 = unlimited.
    pub fn new(per_second: f64, now: Instant) -> Self {
        Self {
            configured: per_second,
            rate: per_second,
            tokens: per_second.max(1.0),
            last: now,
            last_throttle: None,
            floor_on_429: 50.0,
        }
    }

    /// The current rate (0 = unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.rate > 0.0 {
            let target = if self.configured > 0.0 {
                self.configured
            } else {
                f64::INFINITY
            };
            if self
                .last_throttle
                .is_some_and(|t| now.duration_since(t) > Duration::from_secs(1))
            {
                let step = if self.configured > 0.0 {
                    self.configured * 0.05
                } else {
                    self.rate * 0.05
                };
                self.rate = (self.rate + step * dt).min(target);
                if self.configured == 0.0 && self.rate > 10_000.0 {
                    self.rate = 0.0;
                }
            }
            self.tokens = (self.tokens + self.rate * dt).min(self.rate.max(1.0));
        }
    }

    /// Take a token; `Err(wait)` says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.rate == 0.0 {
            return Ok(());
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }

    /// WeChat Pay answered 429: halve the rate.
    pub fn on_throttled(&mut self, now: Instant) {
        self.refill(now);
        let base = if self.rate > 0.0 {
            self.rate
        } else {
            self.floor_on_429 * 2.0
        };
        self.rate = (base / 2.0).max(1.0);
        self.tokens = self.tokens.min(1.0);
        self.last_throttle = Some(now);
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

    #[test]
    fn breaker_opens_after_threshold_probes_after_cooldown_and_closes_on_success() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(2));
        for _ in 0..2 {
            b.on_failure(t0);
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.try_acquire(t0 + Duration::from_secs(1)));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(b.state(t2), BreakerState::HalfOpen);
        assert!(b.try_acquire(t2));
        assert!(!b.try_acquire(t2), "one probe at a time");
        b.on_failure(t2);
        assert_eq!(b.state(t2), BreakerState::Open, "a failed probe reopens");
        let t4 = t2 + Duration::from_secs(2);
        assert!(b.try_acquire(t4));
        b.on_success();
        assert_eq!(b.state(t4), BreakerState::Closed);
    }

    #[test]
    fn rate_limiter_halves_on_429_and_recovers() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100.0, t0);
        r.on_throttled(t0);
        assert_eq!(r.rate(), 50.0);
        r.on_throttled(t0);
        assert_eq!(r.rate(), 25.0);
        let later = t0 + Duration::from_secs(11);
        let _ = r.try_take(later);
        assert!(r.rate() > 25.0 && r.rate() <= 100.0, "{}", r.rate());
        let mut unlimited = RateLimiter::new(0.0, t0);
        assert!((0..10_000).all(|_| unlimited.try_take(t0).is_ok()));
        unlimited.on_throttled(t0);
        assert_eq!(unlimited.rate(), 50.0);
        assert!(unlimited.try_take(t0).is_ok());
        assert!(unlimited.try_take(t0).is_err(), "limited after a 429");
    }
}
