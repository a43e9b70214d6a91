//! The pure half of an order's work: given its state and its queued events, what to apply, what
//! to post, what to dead-letter and what is done — decided here, without IO.
//!
//! The service's order task executes each [`Step`] (changelog writes, the POST, dead letters,
//! offsets); `check-event` and the demo's expected bodies follow the same steps with every post
//! taken as acknowledged ([`acknowledged_posts`]). So the three cannot disagree on what an event
//! does.

use crate::snapshot::{
    may_coalesce, Body, Defaults, Ignored, OrderEvent, OrderState, Outcome, Rejected,
};

/// What to do with the first queued event(s) of an order. [`next`] has already applied them to
/// the state it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The first event is rejected (SPEC's `invalid_event`, `status_regression`…): dead-letter
    /// it; the state is unchanged.
    DeadLetter(Rejected),
    /// The first event needs no post: it is done once the state is durable (a changelog write
    /// first when `changed`).
    Done {
        /// Why it was ignored, when it was (duplicate, stale).
        ignored: Option<Ignored>,
        /// The event changed the state.
        changed: bool,
    },
    /// Post the state's body for the first `events` events: the first one, and the later ones
    /// of the same status coalesced into it (SPEC §4).
    Post {
        /// How many queued events the post covers (≥ 1).
        events: usize,
        /// Why the first event was ignored, when it was (a restored body written ahead but never
        /// acknowledged is posted even when its redelivered event is a duplicate).
        ignored: Option<Ignored>,
        /// The events changed the state (a write-ahead record is due either way).
        changed: bool,
        /// The state before these events: what is made durable again if the post ends in dead
        /// letters.
        before: Box<OrderState>,
        /// The body to post: the state's [`OrderState::body`] after these events, serialised
        /// and hashed once, when they were applied.
        body: Body,
    },
}

impl Step {
    /// How many queued events this step covers.
    pub fn events(&self) -> usize {
        match self {
            Step::Post { events, .. } => *events,
            Step::DeadLetter(_) | Step::Done { .. } => 1,
        }
    }
}

/// Decide the step for the first of `events` (non-empty) and apply it to `state`; a post also
/// takes the following events whose status is the same.
pub fn next<E: AsRef<OrderEvent>>(
    state: &mut OrderState,
    events: &[E],
    defaults: &Defaults,
) -> Step {
    let first = events[0].as_ref();
    let before = state.clone();
    let (outcome, applied_body) = state.apply_keeping_body(first, defaults);
    let (ignored, mut body, mut changed) = match outcome {
        Outcome::Rejected(r) => return Step::DeadLetter(r),
        Outcome::Ignored(why) => (Some(why), state.body(), false),
        Outcome::Applied { .. } => (None, applied_body, true),
    };
    let Some(due) = body.take().filter(|b| !state.is_acked(b)) else {
        return Step::Done { ignored, changed };
    };
    let mut body = due;
    let mut covered = 1;
    for event in &events[1..] {
        let mut trial = state.clone();
        let status = state.status();
        let (outcome, trial_body) = trial.apply_keeping_body(event.as_ref(), defaults);
        let same_status = trial
            .status()
            .zip(status)
            .is_some_and(|(newer, pending)| may_coalesce(pending, newer));
        match outcome {
            Outcome::Applied { .. } | Outcome::Ignored(_) if same_status => {
                if let Outcome::Applied { .. } = outcome {
                    changed = true;
                    // Applied with a status (same_status): the body is there.
                    body = trial_body.unwrap_or(body);
                }
                *state = trial;
                covered += 1;
            }
            _ => break,
        }
    }
    Step::Post {
        events: covered,
        ignored,
        changed,
        before: Box::new(before),
        body,
    }
}

/// Every body WeChat Pay accepts for `events` applied in order to a new order, each post taken
/// as acknowledged at once (the demo's expected bodies; what `check-event` reports).
pub fn acknowledged_posts<E: AsRef<OrderEvent>>(events: &[E], defaults: &Defaults) -> Vec<Body> {
    let mut state = OrderState::default();
    let mut posts = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let step = next(&mut state, &events[i..], defaults);
        if let Step::Post { .. } = step {
            if let Some(body) = state.body().filter(|b| !state.is_acked(b)) {
                state.mark_acked(&body, 0);
                posts.push(body);
            }
        }
        i += step.events();
    }
    posts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, DecodeLimits};

    /// A fixture order's events: CREATE_DEAL, a second CREATE_DEAL (one more guest), then
    /// PAY_SUCCESS, then a late CREATE_DEAL (a regression).
    fn events() -> Vec<OrderEvent> {
        let [create, pay] = crate::fixtures::order_events(1, 2);
        let value = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        let (create, mut pay) = (value(&create), value(&pay));
        let mut more = create.clone();
        more["event_id"] = "more".into();
        more["seq"] = 2.into();
        more["patch"]["people_count"] = 4.into();
        pay["seq"] = 3.into();
        let mut late = create.clone();
        late["event_id"] = "late".into();
        late["seq"] = 4.into();
        [create, more, pay, late]
            .iter()
            .map(|v| decode(v.to_string().as_bytes(), &DecodeLimits::default()).unwrap())
            .collect()
    }

    #[test]
    fn same_status_events_coalesce_into_one_post_and_a_new_status_starts_another() {
        let events = &events()[..3];
        let mut state = OrderState::default();
        let step = next(&mut state, events, &Defaults::default());
        assert!(
            matches!(
                step,
                Step::Post {
                    events: 2,
                    ignored: None,
                    changed: true,
                    ..
                }
            ),
            "{step:?}"
        );
        let step = next(&mut state, &events[2..], &Defaults::default());
        assert!(matches!(step, Step::Post { events: 1, .. }), "{step:?}");
        let bodies = acknowledged_posts(events, &Defaults::default());
        assert_eq!(bodies.len(), 2, "one post per status");
        assert_eq!(bodies[1].digest, state.body().unwrap().digest);
    }

    #[test]
    fn a_duplicate_is_done_unchanged_and_a_regression_is_dead_lettered() {
        let all = events();
        let events = [
            all[0].clone(),
            all[2].clone(),
            all[2].clone(),
            all[3].clone(),
        ];
        let mut state = OrderState::default();
        for first in 0..2 {
            next(&mut state, &events[first..first + 1], &Defaults::default());
            let body = state.body().unwrap();
            state.mark_acked(&body, 0);
        }
        let after = state.clone();
        let step = next(&mut state, &events[2..], &Defaults::default());
        assert!(
            matches!(
                step,
                Step::Done {
                    ignored: Some(Ignored::DuplicateEvent),
                    changed: false
                }
            ),
            "{step:?}"
        );
        let step = next(&mut state, &events[3..], &Defaults::default());
        assert!(matches!(step, Step::DeadLetter(_)), "{step:?}");
        assert_eq!(state, after, "neither changes the state");
    }
}
