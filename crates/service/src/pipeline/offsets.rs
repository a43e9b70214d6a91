//! Offset tracking for one partition (SPEC §5 commit rule): the committable offset only moves
//! past an event when that event and every earlier event of the partition is done.

use std::collections::BTreeSet;

/// Offsets received and not yet done, for one partition.
#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    pending: BTreeSet<i64>,
    /// One past the highest offset received.
    next: Option<i64>,
    /// The offset last handed out by [`OffsetTracker::take_commit`].
    committed: Option<i64>,
}

impl OffsetTracker {
    /// A tracker that starts at `position` (the partition's committed offset, if known).
    pub fn starting_at(position: Option<i64>) -> Self {
        Self {
            pending: BTreeSet::new(),
            next: position,
            committed: position,
        }
    }

    /// An event at `offset` was received (offsets arrive in increasing order).
    pub fn received(&mut self, offset: i64) {
        self.pending.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The event at `offset` is done (acknowledged, durable, or dead-lettered).
    pub fn done(&mut self, offset: i64) {
        self.pending.remove(&offset);
    }

    /// Offsets received and not done.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The offset to commit: the lowest offset not done, or one past the highest received when
    /// all are done. Kafka's committed offset is the next offset to read.
    pub fn committable(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }

    /// The committable offset when it moved since the last call, or, with `again`, even when it
    /// did not (a commit can fail during a rebalance and must be repeated).
    pub fn take_commit(&mut self, again: bool) -> Option<i64> {
        let c = self.committable()?;
        if Some(c) == self.committed && !again {
            return None;
        }
        self.committed = Some(c);
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commit_waits_for_the_lowest_unfinished_offset() {
        let mut t = OffsetTracker::starting_at(None);
        assert_eq!(t.committable(), None);
        for o in 10..15 {
            t.received(o);
        }
        t.done(11);
        t.done(12);
        assert_eq!(t.take_commit(false), Some(10));
        t.done(10);
        assert_eq!(t.take_commit(false), Some(13));
        assert_eq!(t.take_commit(false), None, "unchanged");
        assert_eq!(t.take_commit(true), Some(13), "repeated on request");
        t.done(13);
        t.done(14);
        assert_eq!(t.take_commit(false), Some(15));
        assert_eq!(t.in_flight(), 0);
    }

    proptest! {
        /// Whatever the completion order, the committable offset never passes an unfinished
        /// offset, never moves back, and reaches one past the last offset when all are done.
        #[test]
        fn never_commits_past_an_unfinished_offset(n in 1usize..200, start in 0i64..1000, order in any::<u64>()) {
            use rand::{seq::SliceRandom, SeedableRng};
            let mut t = OffsetTracker::starting_at(Some(start));
            let offsets: Vec<i64> = (start..start + n as i64).collect();
            let mut completion = offsets.clone();
            completion.shuffle(&mut rand::rngs::StdRng::seed_from_u64(order));
            let mut done = std::collections::BTreeSet::new();
            let mut last = start;
            // Receive all first, then complete in random order, interleaving commits.
            for &o in &offsets {
                t.received(o);
            }
            for o in completion {
                t.done(o);
                done.insert(o);
                if let Some(c) = t.take_commit(false) {
                    prop_assert!(c >= last, "moved back");
                    prop_assert!((start..c).all(|x| done.contains(&x)), "passed an unfinished offset");
                    last = c;
                }
            }
            prop_assert_eq!(t.committable(), Some(start + n as i64));
        }
    }
}
