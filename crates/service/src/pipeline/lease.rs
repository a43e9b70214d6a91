//! Whether this process may still act for the partitions it was assigned, and the test-only crash
//! points of an order's step.
//!
//! A process that was suspended (SIGSTOP, a frozen VM, a stalled host) for longer than a fraction
//! of its session timeout may have been expelled from the group while it did not run: another
//! member can own its partitions by now. librdkafka notices that only after its own session
//! timer fires, and on resumption tokio tasks run at once. So a watchdog thread ticks every
//! 100 ms; a task checks the lease right before a request goes on the wire, and a gap larger
//! than the threshold means: send nothing, exit non-zero (crash-only; the platform restarts the
//! pod, which rejoins and restores). The watchdog marks the lease broken *before* it records the
//! new tick, so a task that sees the fresh tick also sees the broken lease.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The process-wide lease.
#[derive(Debug)]
pub struct Lease {
    origin: Instant,
    /// Milliseconds since `origin` at the watchdog's last tick.
    last_tick_ms: AtomicU64,
    broken: AtomicBool,
    threshold: Duration,
}

impl Lease {
    /// A lease broken by a gap of `threshold` between watchdog ticks.
    pub fn new(threshold: Duration) -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            threshold,
        })
    }

    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Whether a request may go on the wire now.
    pub fn holds(&self) -> bool {
        if self.broken.load(Ordering::SeqCst) {
            return false;
        }
        let gap = self
            .elapsed_ms()
            .saturating_sub(self.last_tick_ms.load(Ordering::SeqCst));
        gap < self.threshold.as_millis() as u64
    }

    /// One watchdog tick; false (and the lease broken for good) when the gap since the previous
    /// tick reached the threshold.
    pub fn tick(&self) -> bool {
        let now = self.elapsed_ms();
        let gap = now.saturating_sub(self.last_tick_ms.load(Ordering::SeqCst));
        let ok = gap < self.threshold.as_millis() as u64;
        if !ok {
            self.broken.store(true, Ordering::SeqCst);
        }
        self.last_tick_ms.store(now, Ordering::SeqCst);
        ok && !self.broken.load(Ordering::SeqCst)
    }

    /// Start the watchdog thread: on a broken lease it logs and exits the process with code 1.
    /// The thread ends when the lease is dropped (a service run in a test process ended).
    pub fn start_watchdog(self: &Arc<Self>) -> std::io::Result<()> {
        self.tick();
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("lease-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(lease) = weak.upgrade() else {
                    return;
                };
                if !lease.tick() {
                    let msg = format!(
                        "process was suspended for longer than {} ms: its group membership may have expired and another member may own its partitions; exiting without sending anything more (crash-only)",
                        lease.threshold.as_millis()
                    );
                    crate::telemetry::exit_crash_only(&msg);
                }
            })
            .map(|_| ())
    }
}

/// The points of an order's step where the test-only crash hook can abort the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The write-ahead record is acknowledged; the request is not sent yet.
    BeforePost,
    /// A verified 204 arrived; the acknowledged-digest record is not written yet.
    AfterAck,
    /// The acknowledged-digest record is written; the offset is not committed yet.
    BeforeCommit,
    /// Inside an order task, before its write-ahead record: the hook panics the task (a bug's
    /// stand-in) instead of aborting the process.
    PanicInTask,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            Self::BeforePost => "before_post",
            Self::AfterAck => "after_ack",
            Self::BeforeCommit => "before_commit",
            Self::PanicInTask => "panic_in_task",
        }
    }
}

struct Hook {
    point: String,
    at: u64,
    seen: AtomicU64,
}

/// Test-only fault injection: with `CATERING_SYNC_CRASH_AT=<point>:<n>` in the environment the
/// process aborts (no destructors, no flush, like SIGKILL) the n-th time `point` is reached.
/// Unset (production), this is one relaxed load.
pub fn crash_point(point: CrashPoint) {
    static HOOK: OnceLock<Option<Hook>> = OnceLock::new();
    let hook = HOOK.get_or_init(|| {
        let v = std::env::var("CATERING_SYNC_CRASH_AT").ok()?;
        let (p, n) = v.split_once(':').unwrap_or((v.as_str(), "1"));
        Some(Hook {
            point: p.to_string(),
            at: n.parse().unwrap_or(1).max(1),
            seen: AtomicU64::new(0),
        })
    });
    if let Some(h) = hook {
        if h.point == point.name() && h.seen.fetch_add(1, Ordering::Relaxed) + 1 == h.at {
            if point == CrashPoint::PanicInTask {
                panic!("CATERING_SYNC_CRASH_AT reached panic_in_task (test-only)");
            }
            eprintln!(
                "catering-sync: CATERING_SYNC_CRASH_AT reached {}: aborting",
                h.point
            );
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_breaks_the_lease_for_good() {
        let lease = Lease::new(Duration::from_millis(50));
        assert!(lease.tick());
        assert!(lease.holds());
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            !lease.holds(),
            "a task sees the gap before the watchdog does"
        );
        assert!(!lease.tick(), "the watchdog sees it");
        assert!(!lease.holds(), "broken even though the tick is fresh");
        assert!(!lease.tick());
    }
}
