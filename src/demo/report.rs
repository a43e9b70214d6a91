//! The demo's verification and summary.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::Registry;

use super::orders::{BadEvent, DemoOrder};
use crate::dead_letter::header;
use crate::replay::DeadLetterRecord;
use crate::sandbox::SandboxHandle;

/// Whether the demo did what it promises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Every problem found (empty: verified).
    pub problems: Vec<String>,
}

impl Verification {
    /// Verified.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Orders generated.
    pub orders: usize,
    /// Records produced (bad ones included).
    pub events: usize,
    /// Deliberately bad records.
    pub bad_events: usize,
    /// POST attempts by `outcome/status`.
    pub posts: BTreeMap<String, u64>,
    /// Retries scheduled.
    pub retries: u64,
    /// Dead letters in the topic, by reason.
    pub dead_letters: BTreeMap<String, usize>,
    /// Time from start to the last order verified.
    pub elapsed: Duration,
    /// Posts acknowledged.
    pub acknowledged: u64,
    /// POST latency p50 and p99 (from the histogram buckets).
    pub latency_p50_p99: (f64, f64),
    /// The verification.
    pub verification: Verification,
}

fn statuses(sandbox: &SandboxHandle, no: &str) -> Vec<String> {
    sandbox
        .posts(no)
        .into_iter()
        .map(|p| p.status.unwrap_or_default())
        .collect()
}

/// Orders whose final status reached the sandbox.
pub fn complete_orders(sandbox: &SandboxHandle, orders: &[DemoOrder]) -> usize {
    let summary = sandbox.summary();
    orders
        .iter()
        .filter(|o| {
            summary.get(&o.no).is_some_and(|s| {
                let last = s.last().and_then(|x| x.as_deref());
                last == Some(if o.paid { "PAY_SUCCESS" } else { "CREATE_DEAL" })
            })
        })
        .count()
}

fn gathered(registries: &Mutex<Vec<Registry>>) -> Vec<prometheus::proto::MetricFamily> {
    registries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flat_map(Registry::gather)
        .collect()
}

fn counter_sum(families: &[prometheus::proto::MetricFamily], name: &str) -> u64 {
    families
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// Dead letters the consumers have written so far.
pub fn dead_letters_written(registries: &Mutex<Vec<Registry>>) -> u64 {
    counter_sum(&gathered(registries), "catering_sync_dead_letters_total")
}

/// Quantile from merged histogram buckets (linear within a bucket).
fn quantile(buckets: &BTreeMap<u64, u64>, total: u64, q: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let target = q * total as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for (bound_bits, count) in buckets {
        let bound = f64::from_bits(*bound_bits);
        if *count as f64 >= target {
            let within = (*count - prev_count).max(1) as f64;
            return prev_bound + (bound - prev_bound) * ((target - prev_count as f64) / within);
        }
        prev_bound = bound;
        prev_count = *count;
    }
    prev_bound
}

fn latency(families: &[prometheus::proto::MetricFamily]) -> (f64, f64) {
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    let mut total = 0;
    for m in families
        .iter()
        .filter(|f| f.name() == "catering_sync_post_duration_seconds")
        .flat_map(|f| f.get_metric())
    {
        let h = m.get_histogram();
        total += h.get_sample_count();
        for b in h.get_bucket() {
            if b.upper_bound().is_finite() {
                *buckets.entry(b.upper_bound().to_bits()).or_default() += b.cumulative_count();
            }
        }
    }
    (
        quantile(&buckets, total, 0.5),
        quantile(&buckets, total, 0.99),
    )
}

fn verify(
    orders: &[DemoOrder],
    bad: &[BadEvent],
    sandbox: &SandboxHandle,
    dlq: &[DeadLetterRecord],
) -> Verification {
    let mut problems = Vec::new();
    for o in orders {
        let s = statuses(sandbox, &o.no);
        let ordered = s
            .windows(2)
            .all(|w| !(w[0] == "PAY_SUCCESS" && w[1] == "CREATE_DEAL"));
        let reached = s.first().map(String::as_str) == Some("CREATE_DEAL")
            && s.iter().any(|x| x == "PAY_SUCCESS") == o.paid;
        if !ordered || !reached {
            problems.push(format!("order {}: statuses at the sandbox {s:?}", o.no));
            continue;
        }
        let last = sandbox.posts(&o.no).pop().and_then(|p| p.body);
        if last != o.expected_body() {
            problems.push(format!(
                "order {}: the last accepted body is not the expected merge",
                o.no
            ));
        }
    }
    for b in bad {
        let found: Vec<&DeadLetterRecord> = dlq
            .iter()
            .filter(|r| r.value.as_deref() == Some(b.value.as_slice()))
            .collect();
        match found.first() {
            None => problems.push(format!(
                "bad event ({}) missing from the dead-letter topic",
                b.reason
            )),
            Some(r)
                if crate::dead_letter::header_value(&r.headers, header::REASON)
                    != Some(b.reason) =>
            {
                problems.push(format!(
                    "bad event dead-lettered with the wrong reason (expected {})",
                    b.reason
                ))
            }
            Some(_) => {}
        }
    }
    let unexpected = dlq
        .iter()
        .filter(|r| {
            !bad.iter()
                .any(|b| r.value.as_deref() == Some(b.value.as_slice()))
        })
        .count();
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} dead letters that are not the deliberately bad events"
        ));
    }
    problems.truncate(20);
    Verification { problems }
}

/// Build the report.
pub fn build(
    orders: &[DemoOrder],
    bad: &[BadEvent],
    events: usize,
    sandbox: &SandboxHandle,
    registries: &Mutex<Vec<Registry>>,
    dlq: &[DeadLetterRecord],
    elapsed: Duration,
) -> DemoReport {
    let families = gathered(registries);
    let mut posts = BTreeMap::new();
    for m in families
        .iter()
        .filter(|f| f.name() == "catering_sync_posts_total")
        .flat_map(|f| f.get_metric())
    {
        let label = |n: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == n)
                .map(|l| l.value().to_string())
                .unwrap_or_default()
        };
        let v = m.get_counter().get_value() as u64;
        if v > 0 {
            *posts
                .entry(format!("{} {}", label("outcome"), label("status")))
                .or_default() += v;
        }
    }
    let mut dead_letters = BTreeMap::new();
    for r in dlq {
        *dead_letters
            .entry(
                crate::dead_letter::header_value(&r.headers, header::REASON)
                    .unwrap_or("?")
                    .to_string(),
            )
            .or_default() += 1;
    }
    DemoReport {
        orders: orders.len(),
        events,
        bad_events: bad.len(),
        acknowledged: posts
            .iter()
            .filter(|(k, _)| k.starts_with("delivered"))
            .map(|(_, v)| v)
            .sum(),
        posts,
        retries: counter_sum(&families, "catering_sync_retries_total"),
        dead_letters,
        elapsed,
        latency_p50_p99: latency(&families),
        verification: verify(orders, bad, sandbox, dlq),
    }
}

/// What an operator calls a `catering_sync_posts_total` series (`outcome status`).
fn post_row(key: &str) -> String {
    match key {
        "delivered 204" => "posts acknowledged (verified 204)".into(),
        "transient 204" => "posts retried: unverified 204".into(),
        "transient none" => "posts retried: no answer (connection or timeout)".into(),
        "transient 429" => "posts retried: throttled (429)".into(),
        "transient 500" | "transient 503" => {
            format!("posts retried: WeChat Pay error ({})", &key[10..])
        }
        "rejected 400" => "posts rejected (400): dead-lettered".into(),
        "config_fault 401" => "posts refused (401): configuration fault".into(),
        other => format!("posts {other}"),
    }
}

impl DemoReport {
    /// The summary as a table with both edges, sized to its content.
    fn table(&self) -> comfy_table::Table {
        let secs = self.elapsed.as_secs_f64().max(0.001);
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_header(["", "this run"]);
        table.add_row(["orders".to_string(), self.orders.to_string()]);
        table.add_row([
            "events produced".to_string(),
            format!("{} ({} deliberately bad)", self.events, self.bad_events),
        ]);
        for (k, v) in &self.posts {
            table.add_row([post_row(k), v.to_string()]);
        }
        table.add_row(["retries scheduled".to_string(), self.retries.to_string()]);
        let dl = if self.dead_letters.is_empty() {
            "none".to_string()
        } else {
            self.dead_letters
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.add_row(["dead letters by reason".to_string(), dl]);
        table.add_row([
            "throughput".to_string(),
            format!(
                "{:.0} acknowledged posts/s, {:.0} events/s over {:.1} s",
                self.acknowledged as f64 / secs,
                self.events as f64 / secs,
                secs
            ),
        ]);
        table.add_row([
            "post latency p50 / p99".to_string(),
            format!(
                "{:.1} ms / {:.1} ms",
                self.latency_p50_p99.0 * 1000.0,
                self.latency_p50_p99.1 * 1000.0
            ),
        ]);
        table
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.table())?;
        if self.verification.ok() {
            writeln!(f, "VERIFIED: every order reached the sandbox with all its statuses in order and the expected final body; the {} bad events, and only they, are in the dead-letter topic.", self.bad_events)
        } else {
            writeln!(f, "NOT VERIFIED:")?;
            for p in &self.verification.problems {
                writeln!(f, "  - {p}")?;
            }
            Ok(())
        }
    }
}
