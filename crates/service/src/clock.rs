//! Time and cancellation, one of each for the whole service.
//!
//! - The monotonic clock of the async side is tokio's [`Instant`]: `tokio::time::pause` stops
//!   it and `tokio::time::advance` moves it, so tests of the retry gate, breaker, rate limiter
//!   and the workers' bounds run in virtual time instead of sleeping. The delivery machinery,
//!   the retry policy, the partition workers and `dlq replay` measure with it. Code that runs
//!   outside the runtime's tasks — the rdkafka poll thread and its commit queue, the blocking
//!   changelog restore and flush, the suspension lease's watchdog — measures with
//!   `std::time::Instant`: a paused clock cannot apply to a thread it does not drive (a blocking
//!   task even keeps a paused clock from advancing), so those stay bounded in real time.
//! - The wall clock, [`unix_now`] and [`utc_now`], only for what is written down or compared
//!   with another machine's clock: `Wechatpay-Timestamp`, record timestamps, `sent_at`.
//! - Cancellation is a [`Cancel`]: cloned freely, checked without waiting
//!   ([`Cancel::is_cancelled`], also from a blocking thread), awaited ([`Cancel::cancelled`]) or
//!   raced with a sleep ([`Cancel::sleep`]); its [`Canceller`] cancels every clone at once, for
//!   good — and so does dropping the canceller: nothing can be left waiting for a signal that
//!   can no longer come (a released partition's worker whose handle is gone stops).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

pub use tokio::time::Instant;

/// Now, on the service's monotonic clock (paused in tests that pause tokio's time).
pub fn now() -> Instant {
    Instant::now()
}

/// The wall clock.
pub fn system_now() -> SystemTime {
    SystemTime::now()
}

/// Time since the Unix epoch on the wall clock (zero if the clock is before 1970).
pub fn unix_now() -> Duration {
    system_now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Milliseconds since the Unix epoch on the wall clock.
pub fn unix_millis() -> u64 {
    unix_now().as_millis() as u64
}

/// Seconds since the Unix epoch on the wall clock.
pub fn unix_secs() -> i64 {
    unix_now().as_secs() as i64
}

/// The wall clock as a UTC date and time.
pub fn utc_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The cancelling half: [`Canceller::cancel`] (or dropping it, unless made
/// [`Canceller::explicit`]) cancels every [`Cancel`] made from it.
#[derive(Debug)]
pub struct Canceller {
    tx: watch::Sender<bool>,
    on_drop: bool,
}

/// The observing half; cheap to clone. Cancellation is final.
#[derive(Debug, Clone)]
pub struct Cancel {
    rx: watch::Receiver<bool>,
    /// [`Cancel::never`]'s own sender, kept so that `cancelled()` pends rather than ends.
    _never: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Default for Canceller {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        if self.on_drop {
            self.cancel();
        }
    }
}

impl Canceller {
    /// Not cancelled yet; cancels when dropped.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
            on_drop: true,
        }
    }

    /// Cancels only when [`Canceller::cancel`] is called, never by being dropped (the poll
    /// thread's stop: if `run`'s future is dropped, e.g. its runtime shuts down, the thread must
    /// not start a drain it can no longer finish).
    pub fn explicit() -> Self {
        Self {
            tx: watch::channel(false).0,
            on_drop: false,
        }
    }

    /// A token that observes this canceller.
    pub fn token(&self) -> Cancel {
        Cancel {
            rx: self.tx.subscribe(),
            _never: None,
        }
    }

    /// Cancel every token, now and for good (idempotent).
    pub fn cancel(&self) {
        self.tx.send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Has [`Canceller::cancel`] been called?
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }
}

impl Cancel {
    /// A token nothing ever cancels.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            rx,
            _never: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Cancelled already? Never waits; usable from any thread.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once cancelled (at once if it is).
    pub async fn cancelled(&mut self) {
        // The sender of a `Canceller` cancels before it goes, and `never()` keeps its own: an
        // error here cannot mean anything but cancelled.
        let _ = self.rx.wait_for(|c| *c).await;
    }

    /// Sleep `d` unless cancelled first; true when cancelled.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if self.is_cancelled() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.cancelled() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_at_its_deadline_in_virtual_time_or_at_cancellation() {
        let canceller = Canceller::new();
        let mut token = canceller.token();
        let t0 = now();
        assert!(!token.sleep(Duration::from_secs(3600)).await);
        assert_eq!(now() - t0, Duration::from_secs(3600));

        let mut sleeper = canceller.token();
        let task = tokio::spawn(async move { sleeper.sleep(Duration::from_secs(60)).await });
        tokio::time::advance(Duration::from_secs(10)).await;
        canceller.cancel();
        assert!(task.await.unwrap(), "the sleep reports its cancellation");
        assert_eq!(now() - t0, Duration::from_secs(3610));
        assert!(token.is_cancelled() && canceller.is_cancelled());
        assert!(
            token.sleep(Duration::from_secs(1)).await,
            "cancelled stays cancelled"
        );
        assert_eq!(now() - t0, Duration::from_secs(3610));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_canceller_cancels_and_never_does_not() {
        let canceller = Canceller::new();
        let mut token = canceller.token();
        drop(canceller);
        assert!(token.is_cancelled());
        assert!(token.sleep(Duration::from_secs(5)).await);
        let mut never = Cancel::never();
        let t0 = now();
        assert!(!never.sleep(Duration::from_secs(5)).await);
        assert_eq!(now() - t0, Duration::from_secs(5));
        let explicit = Canceller::explicit();
        let token = explicit.token();
        drop(explicit);
        assert!(
            !token.is_cancelled(),
            "an explicit canceller cancels only when told"
        );
    }
}
