//! The poll loop's periodic offset commits, kept off the poll thread's critical path (issue 11
//! finding 6): at most one asynchronous commit is in flight; its answer arrives on the poll
//! loop's reply queue (`commit_queue_ffi`). Offsets that arrive meanwhile are coalesced
//! (the latest per partition), and a failed commit is repeated after a backoff. So a coordinator
//! that is down costs commits, never the poll loop: pause/resume, rebalances and `/healthz` go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Sender;
// Used on the poll thread, not a runtime task: real time (see `crate::clock`).
use std::time::{Duration, Instant};

/// Offsets of one commit: partition → next offset to read.
pub type Offsets = BTreeMap<i32, i64>;

/// An asynchronous commit not answered within this is given up (counted as a timeout) and its
/// offsets are sent again with the next one. librdkafka answers every commit: while the
/// coordinator is unknown it holds a commit for up to the session timeout (45 s by default),
/// then tries up to three times at `socket.timeout.ms` (60 s) each; this lies beyond that and
/// only bounds how long a lost answer could hold commits back.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// First pause after a failed commit; it doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Longest pause between failed commits.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One assignment of a partition to this member: a report or a commit of an earlier assignment
/// of the same partition is never sent again.
pub type Generation = u64;

/// A worker's report: its partition is done up to `offset` (the next offset to read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// The partition.
    pub partition: i32,
    /// The assignment the worker serves.
    pub generation: Generation,
    /// The next offset to read.
    pub offset: i64,
}

/// How a partition worker reports its done offsets to the poll thread, tagged with the
/// assignment it serves.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: Sender<Done>,
    partition: i32,
    generation: Generation,
}

impl Reporter {
    /// A reporter for one assignment of `partition`.
    pub fn new(tx: Sender<Done>, partition: i32, generation: Generation) -> Self {
        Self {
            tx,
            partition,
            generation,
        }
    }

    /// The partition is done up to `offset`.
    pub fn done(&self, offset: i64) {
        let _ = self.tx.send(Done {
            partition: self.partition,
            generation: self.generation,
            offset,
        });
    }
}

#[derive(Debug, Clone)]
struct InFlight {
    offsets: Offsets,
    generations: HashMap<i32, Generation>,
    sent: Instant,
}

/// The commit state of the poll loop.
#[derive(Debug, Default)]
pub struct CommitQueue {
    /// The current assignment of every owned partition.
    owners: HashMap<i32, Generation>,
    last_generation: Generation,
    /// The latest done offset per partition not yet sent (or sent and failed).
    want: HashMap<i32, (Generation, i64)>,
    in_flight: Option<InFlight>,
    /// No commit is sent before this (after a failure).
    not_before: Option<Instant>,
    failures: u32,
}

/// How an answer matched the commit in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered the commit in flight, sent this long ago; `current` holds its offsets of
    /// partitions still in the assignment they were committed for.
    InFlight {
        /// Since the commit was sent.
        took: Duration,
        /// Its offsets still owned by the same assignment.
        current: Offsets,
    },
    /// It answered something else (a commit given up on, with other offsets).
    Other,
}

impl CommitQueue {
    /// Partition `p` was assigned: the generation its worker reports with.
    pub fn assigned(&mut self, p: i32) -> Generation {
        self.last_generation += 1;
        self.owners.insert(p, self.last_generation);
        self.want.remove(&p);
        self.last_generation
    }

    /// Partition `p` was released: nothing of it is committed by this queue any more, not even
    /// a report still on its way or a commit in flight that fails.
    pub fn forget(&mut self, p: i32) {
        self.owners.remove(&p);
        self.want.remove(&p);
    }

    fn current(&self, p: i32, g: Generation) -> bool {
        self.owners.get(&p) == Some(&g)
    }

    /// A worker's report (offsets only move forward; a report of an earlier assignment is
    /// dropped).
    pub fn want(&mut self, d: Done) {
        if !self.current(d.partition, d.generation) {
            return;
        }
        let e = self
            .want
            .entry(d.partition)
            .or_insert((d.generation, d.offset));
        e.1 = e.1.max(d.offset);
    }

    /// A commit is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Offsets waiting to be sent.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.want.len()
    }

    /// Give up on a commit in flight for longer than [`ANSWER_TIMEOUT`]: its offsets are wanted
    /// again (unless newer ones are). True when one was given up.
    pub fn expire(&mut self, now: Instant) -> bool {
        let stale = self
            .in_flight
            .as_ref()
            .is_some_and(|f| now.saturating_duration_since(f.sent) >= ANSWER_TIMEOUT);
        if stale {
            let f = self.in_flight.take().expect("checked");
            self.failed(f, now);
        }
        stale
    }

    /// The next commit to send, if nothing is in flight, no backoff runs, and something is
    /// wanted.
    pub fn next(&mut self, now: Instant) -> Option<Offsets> {
        if self.in_flight.is_some() || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        if self.want.is_empty() {
            return None;
        }
        let mut offsets = Offsets::new();
        let mut generations = HashMap::new();
        for (p, (g, o)) in self.want.drain() {
            offsets.insert(p, o);
            generations.insert(p, g);
        }
        self.in_flight = Some(InFlight {
            offsets: offsets.clone(),
            generations,
            sent: now,
        });
        Some(offsets)
    }

    /// The commit just handed out by [`CommitQueue::next`] could not even be queued by the
    /// client: as a failed answer.
    pub fn not_sent(&mut self, now: Instant) {
        if let Some(f) = self.in_flight.take() {
            self.failed(f, now);
        }
    }

    /// A commit was answered (`ok`, or failed) with these offsets. An answer to the commit in
    /// flight clears it; a failure wants its offsets again, for partitions still in the same
    /// assignment and not superseded, after a backoff.
    pub fn answered(&mut self, offsets: &Offsets, ok: bool, now: Instant) -> Answer {
        let matches = self
            .in_flight
            .as_ref()
            .is_some_and(|f| &f.offsets == offsets);
        if !matches {
            return Answer::Other;
        }
        let f = self.in_flight.take().expect("checked");
        let took = now.saturating_duration_since(f.sent);
        let current = f
            .offsets
            .iter()
            .filter(|(p, _)| f.generations.get(p).is_some_and(|g| self.current(**p, *g)))
            .map(|(p, o)| (*p, *o))
            .collect();
        if ok {
            self.failures = 0;
            self.not_before = None;
        } else {
            self.failed(f, now);
        }
        Answer::InFlight { took, current }
    }

    fn failed(&mut self, f: InFlight, now: Instant) {
        for (p, o) in f.offsets {
            let Some(&g) = f.generations.get(&p) else {
                continue;
            };
            if self.current(p, g) && !self.want.contains_key(&p) {
                self.want.insert(p, (g, o));
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

    fn offsets(pairs: &[(i32, i64)]) -> Offsets {
        pairs.iter().copied().collect()
    }

    /// A queue owning partitions `0..n`, with their generations.
    fn owning(n: i32) -> (CommitQueue, Vec<Generation>) {
        let mut q = CommitQueue::default();
        let g = (0..n).map(|p| q.assigned(p)).collect();
        (q, g)
    }

    fn done(partition: i32, generation: Generation, offset: i64) -> Done {
        Done {
            partition,
            generation,
            offset,
        }
    }

    fn took(a: Answer) -> Option<Duration> {
        match a {
            Answer::InFlight { took, .. } => Some(took),
            Answer::Other => None,
        }
    }

    #[test]
    fn one_commit_in_flight_and_later_offsets_coalesce() {
        let t = Instant::now();
        let (mut q, g) = owning(2);
        q.want(done(0, g[0], 5));
        q.want(done(1, g[1], 7));
        let first = q.next(t).expect("a commit");
        assert_eq!(first, offsets(&[(0, 5), (1, 7)]));
        q.want(done(0, g[0], 6));
        q.want(done(0, g[0], 9));
        q.want(done(0, g[0], 8));
        assert_eq!(q.next(t), None, "one in flight at a time");
        assert_eq!(
            q.answered(&first, true, t + Duration::from_millis(3)),
            Answer::InFlight {
                took: Duration::from_millis(3),
                current: first.clone()
            }
        );
        assert_eq!(q.next(t), Some(offsets(&[(0, 9)])), "the latest only");
    }

    #[test]
    fn a_failed_commit_is_repeated_after_a_growing_backoff_unless_superseded() {
        let t = Instant::now();
        let (mut q, g) = owning(2);
        q.want(done(0, g[0], 5));
        q.want(done(1, g[1], 7));
        let first = q.next(t).unwrap();
        q.want(done(1, g[1], 10));
        q.answered(&first, false, t);
        assert_eq!(q.next(t), None, "backoff");
        let again = q.next(t + FIRST_BACKOFF).expect("repeated");
        assert_eq!(again, offsets(&[(0, 5), (1, 10)]), "the newer offset wins");
        q.answered(&again, false, t + FIRST_BACKOFF);
        assert_eq!(q.next(t + FIRST_BACKOFF * 2), None, "backoff doubled");
        let third = q.next(t + FIRST_BACKOFF * 3).unwrap();
        q.answered(&third, true, t + FIRST_BACKOFF * 3);
        q.want(done(0, g[0], 11));
        assert!(
            q.next(t + FIRST_BACKOFF * 3).is_some(),
            "no backoff after a success"
        );
    }

    #[test]
    fn released_partitions_are_never_committed_again() {
        let t = Instant::now();
        let (mut q, g) = owning(2);
        q.want(done(0, g[0], 5));
        q.want(done(1, g[1], 7));
        let first = q.next(t).unwrap();
        // Partition 1 is revoked while the commit is in flight, and the commit fails.
        q.forget(1);
        q.answered(&first, false, t);
        let again = q.next(t + MAX_BACKOFF).unwrap();
        assert_eq!(again, offsets(&[(0, 5)]));
        q.answered(&again, true, t + MAX_BACKOFF);
        // A report of partition 1 still on its way after the release.
        q.want(done(1, g[1], 9));
        assert_eq!(q.next(t + MAX_BACKOFF), None, "not owned: dropped");
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn a_partition_assigned_again_never_gets_its_earlier_assignments_offsets() {
        let t = Instant::now();
        let (mut q, g) = owning(1);
        q.want(done(0, g[0], 100));
        let first = q.next(t).unwrap();
        // Revoked (its drain commit moves it to 120, or another member's to 200), then assigned
        // to this member again before the commit in flight is answered.
        q.forget(0);
        q.want(done(0, g[0], 110)); // a late report of the first assignment
        let again = q.assigned(0);
        assert_ne!(again, g[0]);
        // The first assignment's commit fails or is given up: not repeated for the new one.
        let answer = q.answered(&first, false, t);
        assert_eq!(
            answer,
            Answer::InFlight {
                took: Duration::ZERO,
                current: Offsets::new()
            },
            "its offsets are not current"
        );
        assert_eq!(q.next(t + MAX_BACKOFF), None);
        q.want(done(0, again, 120));
        assert_eq!(q.next(t + MAX_BACKOFF), Some(offsets(&[(0, 120)])));
        assert!(q.expire(t + MAX_BACKOFF + ANSWER_TIMEOUT));
        q.forget(0);
        q.assigned(0);
        assert_eq!(q.next(t + MAX_BACKOFF * 3 + ANSWER_TIMEOUT), None);
    }

    #[test]
    fn an_unanswered_commit_is_given_up_and_other_answers_leave_it_alone() {
        let t = Instant::now();
        let (mut q, g) = owning(1);
        q.want(done(0, g[0], 5));
        let first = q.next(t).unwrap();
        assert_eq!(
            q.answered(&offsets(&[(3, 1)]), true, t),
            Answer::Other,
            "another commit's answer"
        );
        assert!(q.in_flight());
        assert!(!q.expire(t + ANSWER_TIMEOUT / 2));
        assert!(q.expire(t + ANSWER_TIMEOUT));
        assert!(!q.in_flight());
        let resent = t + ANSWER_TIMEOUT + MAX_BACKOFF;
        let again = q.next(resent).unwrap();
        assert_eq!(again, first);
        // An answer with the same offsets answers either: the same offsets were committed.
        assert_eq!(
            took(q.answered(&first, true, resent + Duration::from_millis(2))),
            Some(Duration::from_millis(2))
        );
        assert!(!q.in_flight());
    }
}
