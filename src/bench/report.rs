//! What `bench all` measured: the side-by-side table ([`Report::render`]), the rows of
//! `--json` ([`Report::rows`]) and whether every target was met ([`Report::all_met`], from the
//! same rows).

use std::time::Duration;

use super::all::{targets, Options};
use super::e2e::{self, LatencyResult, RunResult};
use super::json::{Better, Results, Row};
use super::restore::RestoreResult;
use super::scaling::Scaling;
use super::{MemoryResult, SignResult};

/// One latency run and the row it is reported in.
#[derive(Debug, Clone)]
pub struct LatencyRow {
    /// The row's id (`6`: the target's; `6t`, `6b`: references).
    pub id: &'static str,
    /// Whether the p99 target is judged on this row.
    pub judged: bool,
    /// What the row is for, or how the run was changed.
    pub note: Option<String>,
    /// The measurement.
    pub result: LatencyResult,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Options used.
    pub options: Options,
    /// Signing, 1 thread and all cores.
    pub sign: Vec<SignResult>,
    /// Backlog events.
    pub backlog_events: u64,
    /// Throughput runs: 0 ms, 50 ms, 50 ms sequential.
    pub runs: Vec<RunResult>,
    /// Restore.
    pub restore: Option<RestoreResult>,
    /// Memory: 5 dishes per order, then 50.
    pub memory: Vec<MemoryResult>,
    /// Latency runs: at half the maximum rate on the mock cluster, then the tansu references.
    pub latency: Vec<LatencyRow>,
    /// The scaling part.
    pub scaling: Option<Scaling>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌ missed"
    }
}

impl Report {
    /// Nothing measured yet but the signing ceiling.
    pub fn new(options: Options, sign: Vec<SignResult>) -> Self {
        Self {
            options,
            sign,
            backlog_events: 0,
            runs: Vec::new(),
            restore: None,
            memory: Vec::new(),
            latency: Vec::new(),
            scaling: None,
        }
    }

    fn cpu_per_sign(&self) -> Duration {
        self.sign
            .iter()
            .find(|s| s.threads == 1)
            .and_then(SignResult::cpu_per_signature)
            .unwrap_or_default()
    }

    /// CPU per signature ÷ CPU per post of a run.
    pub fn efficiency(&self, run: &RunResult) -> f64 {
        self.cpu_per_sign().as_secs_f64() / run.cpu_per_post().as_secs_f64().max(1e-12)
    }

    /// Concurrent ÷ sequential posts/s at the configured latency.
    pub fn concurrency(&self) -> f64 {
        let concurrent = self.runs.iter().find(|r| r.latency_ms > 0 && !r.sequential);
        let sequential = self.runs.iter().find(|r| r.sequential);
        match (concurrent, sequential) {
            (Some(c), Some(s)) => c.per_second() / s.per_second().max(1e-9),
            _ => 0.0,
        }
    }

    /// Whether every target measured was met (every row of [`Report::rows`] with a target).
    pub fn all_met(&self) -> bool {
        self.rows().iter().all(|r| r.met != Some(false))
    }

    /// The `--json` document.
    pub fn results(&self) -> Results {
        Results::new(self.rows())
    }

    /// Every figure measured, one [`Row`] each.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for s in &self.sign {
            let id = if s.threads == 1 {
                "1/one-thread"
            } else {
                "1/all-cores"
            };
            rows.push(
                Row::new(
                    id,
                    format!(
                        "signing ceiling, {} thread{}",
                        s.threads,
                        if s.threads == 1 { "" } else { "s" }
                    ),
                    s.per_second(),
                    "signs/s",
                    Better::Higher,
                )
                .cpu(s.cpu_per_signature().map_or(0.0, ms), "ms/sign"),
            );
        }
        self.run_rows(&mut rows);
        if let Some(rs) = &self.restore {
            let mut row = Row::new(
                "4/restore",
                format!("restore {} orders", rs.orders),
                rs.per_second(),
                "records/s",
                Better::Higher,
            )
            .target(
                format!("≥ {:.0}/s", targets::RESTORE_PER_SECOND),
                rs.per_second() >= targets::RESTORE_PER_SECOND,
            );
            if let Some(c) = rs.cpu {
                row = row.cpu(c.as_secs_f64() * 1e6 / rs.orders.max(1) as f64, "µs/record");
            }
            rows.push(row);
        }
        for m in &self.memory {
            let mut row = Row::new(
                format!("5/dishes-{}", m.dishes),
                format!("memory, {} orders of {} dishes", m.orders, m.dishes),
                m.bytes_per_order,
                "B/order",
                Better::Lower,
            );
            if m.dishes == 5 {
                row = row.target(
                    format!("≤ {:.0} B", targets::BYTES_PER_ORDER),
                    m.bytes_per_order <= targets::BYTES_PER_ORDER,
                );
            }
            rows.push(row);
        }
        for l in &self.latency {
            latency_rows(l, &mut rows);
        }
        if let Some(s) = &self.scaling {
            rows.extend(s.rows(self.cpu_per_sign()));
        }
        rows
    }

    fn run_rows(&self, rows: &mut Vec<Row>) {
        for r in &self.runs {
            let id = if r.sequential {
                format!("3/{}", r.name)
            } else {
                format!("2/{}", r.name)
            };
            rows.push(Row::throughput(id.clone(), run_measure(r), r));
            rows.push(Row::new(
                format!("{id}/others-cpu"),
                format!("{}: sandbox and broker CPU", run_measure(r)),
                ms(r.others_cpu.div_f64(r.posts.max(1) as f64)),
                "ms/post",
                Better::Lower,
            ));
            if r.sequential {
                let c = self.concurrency();
                rows.push(
                    Row::new(
                        "3/concurrency",
                        "concurrent ÷ sequential posts/s",
                        c,
                        "×",
                        Better::Higher,
                    )
                    .target(
                        format!("≥ {:.0}×", targets::CONCURRENCY),
                        c >= targets::CONCURRENCY,
                    ),
                );
            } else {
                let e = self.efficiency(r);
                rows.push(
                    Row::new(
                        format!("{id}/efficiency"),
                        format!("{}: CPU efficiency", run_measure(r)),
                        e,
                        "",
                        Better::Higher,
                    )
                    .target(
                        format!("≥ {:.2}", targets::CPU_EFFICIENCY),
                        e >= targets::CPU_EFFICIENCY,
                    ),
                );
            }
        }
    }

    /// The side-by-side table (Markdown).
    pub fn render(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut out = format!(
            "catering-sync {} bench all — {cores} cores, RSA-2048 (ring), {} input partitions, tansu broker (latency also on librdkafka's MockCluster in its own process), sandbox in benchmark mode (1 request signature in {} verified)\n\n",
            env!("CARGO_PKG_VERSION"),
            e2e::PARTITIONS,
            self.options.verify_every
        );
        out.push_str("| # | measure | result | CPU | target |\n|---|---|---:|---:|---|\n");
        for s in &self.sign {
            out.push_str(&format!(
                "| 1 | signing ceiling, {} thread{} | {:.0} signs/s | {:.3} ms/sign | |\n",
                s.threads,
                if s.threads == 1 { "" } else { "s" },
                s.per_second(),
                s.cpu_per_signature().map_or(0.0, ms),
            ));
        }
        for r in &self.runs {
            out.push_str(&self.run_row(r));
        }
        if let Some(rs) = &self.restore {
            out.push_str(&format!(
                "| 4 | restore {} orders ({} B records) | {:.0} records/s | {} | ≥ {:.0}/s {} |\n",
                rs.orders,
                rs.record_bytes,
                rs.per_second(),
                rs.cpu.map_or("n/a".into(), |c| format!(
                    "{:.1} µs/record (broker {:.1})",
                    c.as_secs_f64() * 1e6 / rs.orders as f64,
                    rs.broker_cpu.as_secs_f64() * 1e6 / rs.orders as f64
                )),
                targets::RESTORE_PER_SECOND,
                mark(rs.per_second() >= targets::RESTORE_PER_SECOND)
            ));
        }
        for m in &self.memory {
            let (id, target) = if m.dishes == 5 {
                (
                    "5",
                    format!(
                        "≤ {:.0} B {}",
                        targets::BYTES_PER_ORDER,
                        mark(m.bytes_per_order <= targets::BYTES_PER_ORDER)
                    ),
                )
            } else {
                ("5b", "(reference)".to_string())
            };
            out.push_str(&format!(
                "| {id} | memory, {} orders of {} dishes | {:.0} B/order | | {target} |\n",
                m.orders, m.dishes, m.bytes_per_order,
            ));
        }
        for l in &self.latency {
            out.push_str(&latency_row(l));
        }
        if let Some(s) = &self.scaling {
            out.push_str(&s.render(self.cpu_per_sign()));
        }
        if !self.runs.is_empty() {
            out.push_str(&format!(
            "\nBacklog: {} events. CPU of the sandbox and broker processes during the runs: {}.\n",
            self.backlog_events,
            self.runs
                .iter()
                .map(|r| format!(
                    "{} {:.3} ms/post",
                    r.name,
                    ms(r.others_cpu.div_f64(r.posts.max(1) as f64))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        }
        out
    }

    fn run_row(&self, r: &RunResult) -> String {
        let (cell, target) = if r.sequential {
            (
                format!("{:.1} posts/s", r.per_second()),
                format!(
                    "concurrency {:.1}× (≥ {:.0}×) {}",
                    self.concurrency(),
                    targets::CONCURRENCY,
                    mark(self.concurrency() >= targets::CONCURRENCY)
                ),
            )
        } else {
            let e = self.efficiency(r);
            (
                format!("{:.0} posts/s", r.per_second()),
                format!(
                    "efficiency {:.2} (≥ {:.2}) {}",
                    e,
                    targets::CPU_EFFICIENCY,
                    mark(e >= targets::CPU_EFFICIENCY)
                ),
            )
        };
        let mut notes = Vec::new();
        if r.exhausted {
            notes.push("backlog ran out: rate understated".to_string());
        }
        if r.retries + r.dead_letters > 0 {
            notes.push(format!(
                "{} retries, {} dead letters",
                r.retries, r.dead_letters
            ));
        }
        format!(
            "| 2{} | {}{} | {cell} | {:.3} ms/post | {target} |\n",
            if r.sequential { "/3" } else { "" },
            run_measure(r),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            },
            ms(r.cpu_per_post()),
        )
    }
}

fn run_measure(r: &RunResult) -> String {
    if r.sequential {
        format!(
            "end to end, {} ms, one event at a time per partition",
            r.latency_ms
        )
    } else {
        format!("end to end, {} ms sandbox latency", r.latency_ms)
    }
}

fn latency_measure(l: &LatencyRow) -> String {
    let r = &l.result;
    format!(
        "produced → POST at {:.0} events/s ({} events, {} broker{})",
        r.rate,
        r.events,
        r.broker,
        l.note
            .as_ref()
            .filter(|_| l.judged)
            .map_or(String::new(), |n| format!("; {n}"))
    )
}

fn latency_row(l: &LatencyRow) -> String {
    let r = &l.result;
    let verdict = if l.judged {
        format!(
            "(≤ {:.0} ms) {}",
            targets::P99_MS,
            mark(ms(r.added_p99) <= targets::P99_MS)
        )
    } else {
        format!("({})", l.note.as_deref().unwrap_or("reference"))
    };
    let per_event = |d: Duration| ms(d) / r.events.max(1) as f64;
    format!(
        "| {} | {} | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; broker hop alone p50 {:.1} ms, p99 {:.1} ms | {:.3} ms/post (broker {:.3}) | added per event p50 {:.1} ms, p99 {:.1} ms {verdict} |\n",
        l.id,
        latency_measure(l),
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        ms(r.broker_p50),
        ms(r.broker_p99),
        per_event(r.cpu),
        per_event(r.broker_cpu),
        ms(r.added_p50),
        ms(r.added_p99),
    )
}

fn latency_rows(l: &LatencyRow, rows: &mut Vec<Row>) {
    let r = &l.result;
    let measure = latency_measure(l);
    let mut added = Row::new(
        format!("{}/added-p99", l.id),
        format!("{measure}: added p99"),
        ms(r.added_p99),
        "ms",
        Better::Lower,
    );
    if l.judged {
        added = added.target(
            format!("≤ {:.0} ms", targets::P99_MS),
            ms(r.added_p99) <= targets::P99_MS,
        );
    }
    rows.push(added);
    for (name, d) in [
        ("added-p50", r.added_p50),
        ("p50", r.p50),
        ("p99", r.p99),
        ("max", r.max),
        ("broker-p50", r.broker_p50),
        ("broker-p99", r.broker_p99),
    ] {
        rows.push(Row::new(
            format!("{}/{name}", l.id),
            format!("{measure}: {}", name.replace('-', " ")),
            ms(d),
            "ms",
            Better::Lower,
        ));
    }
    for (name, cpu) in [("service-cpu", r.cpu), ("broker-cpu", r.broker_cpu)] {
        rows.push(Row::new(
            format!("{}/{name}", l.id),
            format!(
                "{measure}: {}",
                name.replace('-', " ").replace("cpu", "CPU")
            ),
            ms(cpu) / r.events.max(1) as f64,
            "ms/post",
            Better::Lower,
        ));
    }
}
