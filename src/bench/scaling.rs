//! The scaling rows of `bench all` (`--only scaling`): how the figures move with the resources
//! and the sizes they depend on.
//!
//! - The service pinned to one core (`taskset -c 0`; the broker and the sandbox keep both):
//!   posts/s and CPU per post without cross-core hand-offs inside the service.
//! - 1, 4, 16 and 64 input partitions at the configured sandbox latency (50 ms).
//! - Changelog restore of 0.2×, 1× and 2× `--restore-orders` (100k, 500k, 1M by default):
//!   records/s per size and the ratio of the largest to the smallest, 1.00 when the time grows
//!   linearly with the state.
//!
//! Each measurement runs on a fresh tansu broker of its own (its own backlog), so the sizes are
//! measured alike and the broker's log never carries an earlier run's records. The service of a
//! scaling run is killed after its window: a clean stop, which finishes what it has received
//! first, is checked by the runs of rows 2 and 3.

use std::path::Path;
use std::time::Duration;

use super::all::{step, Options};
use super::broker::BrokerKind;
use super::e2e::{self, Bed, RunResult, RunSpec, PARTITIONS};
use super::json::{Better, Row};
use super::restore::{self, RestoreResult};

/// Input partitions of the partition-scaling runs.
pub const PARTITION_COUNTS: [i32; 4] = [1, 4, 16, 64];
/// Restore sizes, as multiples of `--restore-orders`.
pub const RESTORE_FACTORS: [f64; 3] = [0.2, 1.0, 2.0];

/// The pinned run, or why it was not run.
#[derive(Debug, Clone)]
pub enum Pinned {
    /// Measured.
    Ran(RunResult),
    /// Not run, and why.
    Skipped(&'static str),
}

/// One restore of the size series.
#[derive(Debug, Clone)]
pub struct SizedRestore {
    /// Multiple of `--restore-orders`.
    pub factor: f64,
    /// The measurement.
    pub result: RestoreResult,
}

/// Everything the scaling part measured.
#[derive(Debug, Clone)]
pub struct Scaling {
    /// The service on CPU 0 alone.
    pub pinned: Pinned,
    /// One run per entry of [`PARTITION_COUNTS`].
    pub partitions: Vec<RunResult>,
    /// One restore per entry of [`RESTORE_FACTORS`].
    pub restores: Vec<SizedRestore>,
}

/// A throughput run on a fresh tansu broker: an input of `partitions` partitions holding
/// `backlog` orders, the service pinned to CPU 0 or not.
async fn throughput_on_a_fresh_broker(
    tansu: &Path,
    options: &Options,
    name: &str,
    partitions: i32,
    pinned: bool,
    backlog: usize,
) -> anyhow::Result<RunResult> {
    let mut bed = Bed::new(
        BrokerKind::Tansu(tansu),
        options.verify_every,
        options.max_in_flight,
    )?;
    let result = async {
        let input = format!("bench-{name}-input-{:08x}", rand::random::<u32>());
        bed.create_topic(&input, partitions, false).await?;
        let events = tokio::task::block_in_place(|| e2e::produce_backlog(&bed, &input, backlog))?;
        let spec = RunSpec {
            name,
            latency_ms: options.latency_ms,
            sequential: false,
            partitions,
            pinned,
            // Killed after the window: a clean stop finishes the received backlog first
            // (seconds per run) and is checked by the runs of rows 2 and 3.
            drain: false,
        };
        let warmup = Duration::from_secs_f64(options.warmup_seconds);
        let window = Duration::from_secs_f64(options.seconds);
        e2e::throughput(&bed, spec, &input, events, warmup, window).await
    }
    .await;
    let r = bed.keep_if_failed(result)?;
    step(&format!(
        "  {:.1} posts/s, {:.3} ms CPU/post",
        r.per_second(),
        r.cpu_per_post().as_secs_f64() * 1000.0
    ));
    Ok(r)
}

/// Orders of the restore at `factor` × `--restore-orders` (at least one).
pub fn restore_size(options: &Options, factor: f64) -> usize {
    ((options.restore_orders as f64 * factor).round() as usize).max(1)
}

/// Run the scaling part (`backlog` orders per throughput run).
pub async fn run(tansu: &Path, options: &Options, backlog: usize) -> anyhow::Result<Scaling> {
    let pinned = if super::stack::taskset_available() {
        step(&format!(
            "scaling: the service pinned to CPU 0, {PARTITIONS} partitions, {} ms",
            options.latency_ms
        ));
        Pinned::Ran(
            throughput_on_a_fresh_broker(tansu, options, "pinned", PARTITIONS, true, backlog)
                .await?,
        )
    } else {
        step("scaling: taskset not found, the pinned run is skipped");
        Pinned::Skipped("taskset not found")
    };
    let mut partitions = Vec::new();
    for n in PARTITION_COUNTS {
        step(&format!(
            "scaling: {n} input partitions, {} ms",
            options.latency_ms
        ));
        let name = format!("p{n}");
        partitions
            .push(throughput_on_a_fresh_broker(tansu, options, &name, n, false, backlog).await?);
    }
    let mut restores = Vec::new();
    for factor in RESTORE_FACTORS {
        let orders = restore_size(options, factor);
        step(&format!("scaling: restore of {orders} orders ({factor}×)"));
        let mut bed = Bed::new(
            BrokerKind::Tansu(tansu),
            options.verify_every,
            options.max_in_flight,
        )?;
        let result = restore::restore(&bed, orders).await;
        let result = bed.keep_if_failed(result)?;
        restores.push(SizedRestore { factor, result });
    }
    Ok(Scaling {
        pinned,
        partitions,
        restores,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run_measure(r: &RunResult) -> String {
    if r.pinned {
        format!(
            "scaling: the service pinned to CPU 0 (taskset -c 0), {} partitions, {} ms sandbox latency",
            r.partitions, r.latency_ms
        )
    } else {
        format!(
            "scaling: {} input partition{}, {} ms sandbox latency",
            r.partitions,
            if r.partitions == 1 { "" } else { "s" },
            r.latency_ms
        )
    }
}

fn run_id(r: &RunResult) -> String {
    if r.pinned {
        "7/pinned".to_string()
    } else {
        format!("7/partitions-{}", r.partitions)
    }
}

fn factor_id(factor: f64) -> String {
    format!("8/{factor}x")
}

impl Scaling {
    /// The restores' records/s, largest size ÷ smallest (1.00: time linear in the state size),
    /// with the two sizes.
    pub fn linearity(&self) -> Option<(f64, usize, usize)> {
        let (first, last) = (self.restores.first()?, self.restores.last()?);
        (self.restores.len() > 1).then(|| {
            (
                last.result.per_second() / first.result.per_second().max(1e-9),
                first.result.orders,
                last.result.orders,
            )
        })
    }

    /// The rows of the Markdown table (`cpu_per_sign`: row 1's, for efficiency).
    pub fn render(&self, cpu_per_sign: Duration) -> String {
        let mut out = String::new();
        let mut runs: Vec<&RunResult> = Vec::new();
        match &self.pinned {
            Pinned::Ran(r) => runs.push(r),
            Pinned::Skipped(why) => out.push_str(&format!(
                "| 7 | scaling: the service pinned to CPU 0 (taskset -c 0) | skipped: {why} | | |\n"
            )),
        }
        runs.extend(&self.partitions);
        for r in runs {
            let note = if r.exhausted {
                " (backlog ran out: rate understated)"
            } else {
                ""
            };
            out.push_str(&format!(
                "| 7 | {}{note} | {:.0} posts/s | {:.3} ms/post | efficiency {:.2} (reference) |\n",
                run_measure(r),
                r.per_second(),
                ms(r.cpu_per_post()),
                cpu_per_sign.as_secs_f64() / r.cpu_per_post().as_secs_f64().max(1e-12),
            ));
        }
        for s in &self.restores {
            let r = &s.result;
            out.push_str(&format!(
                "| 8 | restore against state size: {} orders ({}× of --restore-orders) | {:.0} records/s | {} | {:.2} s |\n",
                r.orders,
                s.factor,
                r.per_second(),
                r.cpu.map_or("n/a".into(), |c| format!(
                    "{:.1} µs/record",
                    c.as_secs_f64() * 1e6 / r.orders.max(1) as f64
                )),
                r.elapsed.as_secs_f64(),
            ));
        }
        if let Some((ratio, small, large)) = self.linearity() {
            out.push_str(&format!(
                "| 8 | restore growth, {small} → {large} orders ({:.0}× the state) | {ratio:.2} × the records/s | | linear = 1.00 (reference) |\n",
                large as f64 / small.max(1) as f64,
            ));
        }
        out
    }

    /// The rows of `--json`.
    pub fn rows(&self, cpu_per_sign: Duration) -> Vec<Row> {
        let mut rows = Vec::new();
        let pinned = match &self.pinned {
            Pinned::Ran(r) => Some(r),
            Pinned::Skipped(_) => None,
        };
        for r in pinned.into_iter().chain(&self.partitions) {
            let id = run_id(r);
            rows.push(Row::throughput(id.clone(), run_measure(r), r));
            rows.push(Row::new(
                format!("{id}/efficiency"),
                format!("{}: CPU efficiency", run_measure(r)),
                cpu_per_sign.as_secs_f64() / r.cpu_per_post().as_secs_f64().max(1e-12),
                "",
                Better::Higher,
            ));
        }
        for s in &self.restores {
            let r = &s.result;
            let mut row = Row::new(
                factor_id(s.factor),
                format!("restore against state size: {} orders", r.orders),
                r.per_second(),
                "records/s",
                Better::Higher,
            );
            if let Some(c) = r.cpu {
                row = row.cpu(c.as_secs_f64() * 1e6 / r.orders.max(1) as f64, "µs/record");
            }
            rows.push(row);
        }
        if let Some((ratio, small, large)) = self.linearity() {
            rows.push(Row::new(
                "8/linearity",
                format!("restore records/s, {large} ÷ {small} orders (1.00 = linear)"),
                ratio,
                "",
                Better::Higher,
            ));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_sizes_follow_the_option_and_stay_tiny_for_tiny_inputs() {
        let mut o = Options {
            tansu: None,
            sign_seconds: 1.0,
            seconds: 1.0,
            warmup_seconds: 0.0,
            latency_ms: 50,
            backlog_orders: 0,
            restore_orders: 500_000,
            memory_orders: 1,
            verify_every: 1,
            max_in_flight: 1,
            only: Vec::new(),
            latency_rate: None,
            latency_seconds: 1.0,
        };
        let sizes = |o: &Options| RESTORE_FACTORS.map(|f| restore_size(o, f));
        assert_eq!(sizes(&o), [100_000, 500_000, 1_000_000]);
        o.restore_orders = 2000;
        assert_eq!(sizes(&o), [400, 2000, 4000]);
        o.restore_orders = 1;
        assert_eq!(sizes(&o), [1, 1, 2]);
    }
}
