//! The poll loop's periodic offset commits, kept off the poll thread's critical path (issue 11
//! finding 6): at most one asynchronous commit is in flight; its answer arrives through the
//! consumer's commit callback, served by `poll`. Offsets that arrive meanwhile are coalesced
//! (the latest per partition), and a failed commit is repeated after a backoff. So a coordinator
//! that is down costs commits, never the poll loop: pause/resume, rebalances and `/healthz` go on.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Offsets of one commit: partition → next offset to read.
pub type Offsets = BTreeMap<i32, i64>;

/// An asynchronous commit not answered within this is given up (counted as a timeout) and its
/// offsets are sent again with the next one. librdkafka answers every commit eventually; this
/// only bounds how long a lost answer could hold commits back.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// First pause after a failed commit; it doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Longest pause between failed commits.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct InFlight {
    offsets: Offsets,
    sent: Instant,
}

/// The commit state of the poll loop.
#[derive(Debug, Default)]
pub struct CommitQueue {
    /// The latest done offset per partition not yet sent (or sent and failed).
    want: HashMap<i32, i64>,
    in_flight: Option<InFlight>,
    /// No commit is sent before this (after a failure).
    not_before: Option<Instant>,
    failures: u32,
}

/// How an answer matched the commit in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It answered the commit in flight, sent this long ago.
    InFlight(Duration),
    /// It answered something else (a synchronous drain commit, or a commit given up on).
    Other,
}

impl CommitQueue {
    /// Partition `p` is done up to `offset` (offsets only move forward).
    pub fn want(&mut self, p: i32, offset: i64) {
        let o = self.want.entry(p).or_insert(offset);
        *o = (*o).max(offset);
    }

    /// Partition `p` was released: nothing of it is committed by this queue any more.
    pub fn forget(&mut self, p: i32) {
        self.want.remove(&p);
    }

    /// A commit is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Offsets waiting to be sent.
    pub fn waiting(&self) -> usize {
        self.want.len()
    }

    /// Give up on a commit in flight for longer than [`ANSWER_TIMEOUT`]: its offsets are wanted
    /// again (unless newer ones are). True when one was given up.
    pub fn expire(&mut self, now: Instant, owned: impl Fn(i32) -> bool) -> bool {
        let stale = self
            .in_flight
            .as_ref()
            .is_some_and(|f| now.saturating_duration_since(f.sent) >= ANSWER_TIMEOUT);
        if stale {
            let f = self.in_flight.take().expect("checked");
            self.failed(f.offsets, now, owned);
        }
        stale
    }

    /// The next commit to send, if nothing is in flight, no backoff runs, and something owned is
    /// wanted. Wanted partitions that are not owned are dropped.
    pub fn next(&mut self, now: Instant, owned: impl Fn(i32) -> bool) -> Option<Offsets> {
        if self.in_flight.is_some() || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        self.want.retain(|p, _| owned(*p));
        if self.want.is_empty() {
            return None;
        }
        let offsets: Offsets = self.want.drain().collect();
        self.in_flight = Some(InFlight {
            offsets: offsets.clone(),
            sent: now,
        });
        Some(offsets)
    }

    /// The commit just handed out by [`CommitQueue::next`] could not even be queued by the
    /// client: as a failed answer.
    pub fn not_sent(&mut self, now: Instant, owned: impl Fn(i32) -> bool) {
        if let Some(f) = self.in_flight.take() {
            self.failed(f.offsets, now, owned);
        }
    }

    /// A commit was answered (`ok`, or failed) with these offsets. An answer to the commit in
    /// flight clears it; a failure wants its offsets again, for partitions still owned, after a
    /// backoff.
    pub fn answered(
        &mut self,
        offsets: &Offsets,
        ok: bool,
        now: Instant,
        owned: impl Fn(i32) -> bool,
    ) -> Answer {
        let matches = self
            .in_flight
            .as_ref()
            .is_some_and(|f| &f.offsets == offsets);
        if !matches {
            return Answer::Other;
        }
        let f = self.in_flight.take().expect("checked");
        let took = now.saturating_duration_since(f.sent);
        if ok {
            self.failures = 0;
            self.not_before = None;
        } else {
            self.failed(f.offsets, now, owned);
        }
        Answer::InFlight(took)
    }

    fn failed(&mut self, offsets: Offsets, now: Instant, owned: impl Fn(i32) -> bool) {
        for (p, o) in offsets {
            if owned(p) && !self.want.contains_key(&p) {
                self.want.insert(p, o);
            }
        }
        self.failures = self.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << self.failures.saturating_sub(1).min(8))
            .min(MAX_BACKOFF);
        self.not_before = Some(now + backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: i32) -> bool {
        true
    }

    fn offsets(pairs: &[(i32, i64)]) -> Offsets {
        pairs.iter().copied().collect()
    }

    #[test]
    fn one_commit_in_flight_and_later_offsets_coalesce() {
        let t = Instant::now();
        let mut q = CommitQueue::default();
        q.want(0, 5);
        q.want(1, 7);
        let first = q.next(t, all).expect("a commit");
        assert_eq!(first, offsets(&[(0, 5), (1, 7)]));
        q.want(0, 6);
        q.want(0, 9);
        q.want(0, 8);
        assert_eq!(q.next(t, all), None, "one in flight at a time");
        assert_eq!(
            q.answered(&first, true, t + Duration::from_millis(3), all),
            Answer::InFlight(Duration::from_millis(3))
        );
        assert_eq!(q.next(t, all), Some(offsets(&[(0, 9)])), "the latest only");
    }

    #[test]
    fn a_failed_commit_is_repeated_after_a_growing_backoff_unless_superseded() {
        let t = Instant::now();
        let mut q = CommitQueue::default();
        q.want(0, 5);
        q.want(1, 7);
        let first = q.next(t, all).unwrap();
        q.want(1, 10);
        q.answered(&first, false, t, all);
        assert_eq!(q.next(t, all), None, "backoff");
        let again = q.next(t + FIRST_BACKOFF, all).expect("repeated");
        assert_eq!(again, offsets(&[(0, 5), (1, 10)]), "the newer offset wins");
        q.answered(&again, false, t + FIRST_BACKOFF, all);
        assert_eq!(q.next(t + FIRST_BACKOFF * 2, all), None, "backoff doubled");
        let third = q.next(t + FIRST_BACKOFF * 3, all).unwrap();
        q.answered(&third, true, t + FIRST_BACKOFF * 3, all);
        q.want(0, 11);
        assert!(
            q.next(t + FIRST_BACKOFF * 3, all).is_some(),
            "no backoff after a success"
        );
    }

    #[test]
    fn released_partitions_are_never_committed_again() {
        let t = Instant::now();
        let mut q = CommitQueue::default();
        q.want(0, 5);
        q.want(1, 7);
        let first = q.next(t, all).unwrap();
        // Partition 1 is revoked while the commit is in flight, and the commit fails.
        q.forget(1);
        q.answered(&first, false, t, |p| p == 0);
        let again = q.next(t + MAX_BACKOFF, |p| p == 0).unwrap();
        assert_eq!(again, offsets(&[(0, 5)]));
        q.answered(&again, true, t + MAX_BACKOFF, all);
        q.want(2, 1);
        assert_eq!(
            q.next(t + MAX_BACKOFF, |p| p != 2),
            None,
            "not owned: dropped"
        );
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn an_unanswered_commit_is_given_up_and_other_answers_leave_it_alone() {
        let t = Instant::now();
        let mut q = CommitQueue::default();
        q.want(0, 5);
        let first = q.next(t, all).unwrap();
        assert_eq!(
            q.answered(&offsets(&[(3, 1)]), true, t, all),
            Answer::Other,
            "a drain commit's answer"
        );
        assert!(q.in_flight());
        assert!(!q.expire(t + ANSWER_TIMEOUT / 2, all));
        assert!(q.expire(t + ANSWER_TIMEOUT, all));
        assert!(!q.in_flight());
        let resent = t + ANSWER_TIMEOUT + MAX_BACKOFF;
        let again = q.next(resent, all).unwrap();
        assert_eq!(again, first);
        // An answer with the same offsets answers either: the same offsets were committed.
        assert_eq!(
            q.answered(&first, true, resent + Duration::from_millis(2), all),
            Answer::InFlight(Duration::from_millis(2))
        );
        assert!(!q.in_flight());
    }
}
