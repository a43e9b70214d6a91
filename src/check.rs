//! `catering-sync check-event`: apply a sample of JSONL events in order, in memory, and show what
//! catering-sync would do with each, then every order's snapshot and request body. What a
//! platform engineer runs on their events before going live. Every post that falls due is taken
//! as acknowledged, as if WeChat Pay had answered 204.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use crate::event::{decode, DecodeLimits};
use crate::plan::{self, Step};
use crate::snapshot::types::Secret;
use crate::snapshot::{Defaults, OrderState};

/// Counts of what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Lines read (blank lines skipped).
    pub events: usize,
    /// Applied events.
    pub applied: usize,
    /// Posts that fell due.
    pub posts: usize,
    /// Ignored (duplicate, stale).
    pub ignored: usize,
    /// Malformed, invalid, or rejected by the merge: each would be dead-lettered.
    pub rejected: usize,
}

/// The snapshot as serialised (the request body's exact field order), `login_token` redacted.
fn shown(state: &OrderState) -> String {
    let mut s = state.snapshot();
    if s.login_token.is_some() {
        s.login_token = Some(Secret("<redacted>".into()));
    }
    serde_json::to_string(&s).unwrap_or_default()
}

/// Run the check over `input`, writing the report to `out`.
pub fn check_events<R: BufRead, W: Write>(
    input: R,
    defaults: &Defaults,
    limits: &DecodeLimits,
    out: &mut W,
) -> io::Result<CheckSummary> {
    let mut orders: BTreeMap<String, OrderState> = BTreeMap::new();
    let mut summary = CheckSummary::default();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        summary.events += 1;
        let n = i + 1;
        let event = match decode(&line, limits) {
            Ok(e) => e,
            Err(e) => {
                summary.rejected += 1;
                writeln!(out, "line {n}: REJECTED {e}")?;
                continue;
            }
        };
        let state = orders.entry(event.out_order_no.clone()).or_default();
        let who = format!(
            "line {n}: order {} event {}",
            event.out_order_no, event.event_id
        );
        // The service's own plan for the order, one event at a time; every post taken as
        // acknowledged.
        match plan::next(state, std::slice::from_ref(&event), defaults) {
            Step::Post { ignored, .. } => {
                let applied = match ignored {
                    None => {
                        summary.applied += 1;
                        "applied".to_string()
                    }
                    Some(r) => {
                        summary.ignored += 1;
                        format!("ignored ({})", r.as_str())
                    }
                };
                summary.posts += 1;
                let body = state.body().expect("a due post has a body");
                writeln!(
                    out,
                    "{who}: {applied}, POST due ({}, sha256 {})",
                    body.status,
                    &body.digest_hex()[..16]
                )?;
                state.mark_acked(&body, 0);
            }
            Step::Done { ignored: None, .. } => {
                summary.applied += 1;
                let why = if state.status().is_none() {
                    "draft without status"
                } else {
                    "body unchanged"
                };
                writeln!(out, "{who}: applied, no post ({why})")?;
            }
            Step::Done {
                ignored: Some(r), ..
            } => {
                summary.ignored += 1;
                writeln!(out, "{who}: ignored ({})", r.as_str())?;
            }
            Step::DeadLetter(r) => {
                summary.rejected += 1;
                writeln!(out, "{who}: REJECTED {}: {}", r.reason(), r.detail())?;
            }
        }
    }
    writeln!(out)?;
    for (no, state) in &orders {
        match (state.applied.is_empty(), state.body()) {
            (true, _) => writeln!(out, "order {no}: no event applied")?,
            (false, None) => writeln!(out, "order {no} (draft, not posted): {}", shown(state))?,
            (false, Some(b)) => writeln!(
                out,
                "order {no} ({}): request body ({} bytes, sha256 {}, login_token redacted here): {}",
                b.status,
                b.bytes.len(),
                b.digest_hex(),
                shown(state)
            )?,
        }
    }
    writeln!(
        out,
        "\n{} events: {} applied, {} posts, {} ignored, {} rejected",
        summary.events, summary.applied, summary.posts, summary.ignored, summary.rejected
    )?;
    Ok(summary)
}
