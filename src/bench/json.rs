//! Machine-readable results: `bench all --json FILE` writes every measured figure as one flat
//! list of [`Row`]s; `bench compare A.json B.json` prints B ÷ A for each row both files hold.
//!
//! A row's `id` names the measure independently of the run's parameters (`2/0ms`,
//! `6/added-p99`, `8/2x`), so two runs with other durations or rates still line up; its
//! `measure` is the human name, with those parameters.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughput, efficiency: more is better.
    Higher,
    /// CPU, latency, memory: less is better.
    Lower,
}

impl Better {
    /// `ratio` (B ÷ A) read in this direction: `better`, `worse`, or `same` when it prints as
    /// 1.00.
    pub fn verdict(self, ratio: f64) -> &'static str {
        if format!("{ratio:.2}") == "1.00" {
            return "same";
        }
        match (self, ratio > 1.0) {
            (Self::Higher, true) | (Self::Lower, false) => "better",
            _ => "worse",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Higher => "higher is better",
            Self::Lower => "lower is better",
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Stable identifier: the table's row number, then what it measures.
    pub id: String,
    /// What was measured (as in the table).
    pub measure: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`posts/s`, `ms`, `B/order`; empty for a ratio).
    pub unit: String,
    /// The CPU time the figure cost, where there is one (lower is better).
    pub cpu: Option<f64>,
    /// The unit of `cpu` (`ms/post`, `µs/record`, `ms/sign`).
    pub cpu_unit: Option<String>,
    /// The target it is held to (`≥ 0.85`).
    pub target: Option<String>,
    /// Whether the target was met.
    pub met: Option<bool>,
    /// Which way `value` improves.
    pub better: Better,
}

impl Row {
    /// An end-to-end run's posts/s, with its CPU per post.
    pub fn throughput(id: String, measure: String, run: &super::e2e::RunResult) -> Self {
        Self::new(id, measure, run.per_second(), "posts/s", Better::Higher)
            .cpu(run.cpu_per_post().as_secs_f64() * 1000.0, "ms/post")
    }

    /// A figure with no CPU and no target.
    pub fn new(
        id: impl Into<String>,
        measure: impl Into<String>,
        value: f64,
        unit: &str,
        better: Better,
    ) -> Self {
        Self {
            id: id.into(),
            measure: measure.into(),
            value,
            unit: unit.to_string(),
            cpu: None,
            cpu_unit: None,
            target: None,
            met: None,
            better,
        }
    }

    /// With the CPU it cost.
    pub fn cpu(mut self, cpu: f64, unit: &str) -> Self {
        self.cpu = Some(cpu);
        self.cpu_unit = Some(unit.to_string());
        self
    }

    /// With a target and whether it was met.
    pub fn target(mut self, target: impl Into<String>, met: bool) -> Self {
        self.target = Some(target.into());
        self.met = Some(met);
        self
    }
}

/// The file `bench all --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The version of catering-sync that measured.
    pub catering_sync: String,
    /// Cores available to the benchmark.
    pub cores: usize,
    /// Every figure.
    pub rows: Vec<Row>,
}

impl Results {
    /// `rows`, measured by this build on this machine.
    pub fn new(rows: Vec<Row>) -> Self {
        Self {
            catering_sync: env!("CARGO_PKG_VERSION").to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rows,
        }
    }

    /// Write as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Read a file written by [`Results::write`].
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bench all --json file", path.display()))
    }
}

/// A figure with a sensible number of decimals for its size.
pub fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

fn with_unit(v: f64, unit: &str) -> String {
    if unit.is_empty() {
        number(v)
    } else {
        format!("{} {unit}", number(v))
    }
}

/// One line of the comparison.
struct Line {
    id: String,
    measure: String,
    a: String,
    b: String,
    ratio: Option<f64>,
    better: Better,
}

fn line(id: String, measure: String, (a, b): (f64, f64), unit: &str, better: Better) -> Line {
    Line {
        id,
        measure,
        a: with_unit(a, unit),
        b: with_unit(b, unit),
        ratio: (a != 0.0 && a.is_finite() && b.is_finite()).then(|| b / a),
        better,
    }
}

/// The comparison of `b` with `a` (Markdown): one line per row both hold, and one per CPU
/// figure both hold, B ÷ A with the direction that is better.
pub fn compare(a: &Results, a_name: &str, b: &Results, b_name: &str) -> String {
    let in_a: HashMap<&str, &Row> = a.rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut lines = Vec::new();
    for rb in &b.rows {
        let Some(ra) = in_a.get(rb.id.as_str()) else {
            continue;
        };
        lines.push(line(
            rb.id.clone(),
            rb.measure.clone(),
            (ra.value, rb.value),
            &rb.unit,
            rb.better,
        ));
        if let (Some(ca), Some(cb)) = (ra.cpu, rb.cpu) {
            lines.push(line(
                format!("{} CPU", rb.id),
                format!("{}: CPU", rb.measure),
                (ca, cb),
                rb.cpu_unit.as_deref().unwrap_or(""),
                Better::Lower,
            ));
        }
    }
    let in_b: std::collections::HashSet<&str> = b.rows.iter().map(|r| r.id.as_str()).collect();
    let only = |rows: &[Row], other: &dyn Fn(&str) -> bool| -> Vec<String> {
        rows.iter()
            .filter(|r| !other(&r.id))
            .map(|r| r.id.clone())
            .collect()
    };
    let only_a = only(&a.rows, &|id| in_b.contains(id));
    let only_b = only(&b.rows, &|id| in_a.contains_key(id));
    let mut out = format!(
        "bench compare — A: {a_name} (catering-sync {}, {} cores), B: {b_name} (catering-sync {}, {} cores)\n\n",
        a.catering_sync, a.cores, b.catering_sync, b.cores
    );
    out.push_str("| id | measure | A | B | B ÷ A | |\n|---|---|---:|---:|---:|---|\n");
    for l in &lines {
        let (ratio, verdict) = match l.ratio {
            Some(r) => (
                format!("{r:.2}"),
                format!("{} ({})", l.better.verdict(r), l.better.words()),
            ),
            None => ("n/a".to_string(), l.better.words().to_string()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {ratio} | {verdict} |\n",
            l.id, l.measure, l.a, l.b
        ));
    }
    for (file, ids) in [("A", &only_a), ("B", &only_b)] {
        if !ids.is_empty() {
            out.push_str(&format!("\nOnly in {file}: {}.\n", ids.join(", ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(rows: Vec<Row>) -> Results {
        Results {
            catering_sync: "0.0.0".into(),
            cores: 2,
            rows,
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = results(vec![
            Row::new(
                "2/0ms",
                "end to end, 0 ms",
                1022.0,
                "posts/s",
                Better::Higher,
            )
            .cpu(1.439, "ms/post")
            .target("efficiency ≥ 0.85", false),
            Row::new("5/dishes-5", "memory", 1459.0, "B/order", Better::Lower),
        ]);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"better\":\"higher\""), "{text}");
        assert!(text.contains("\"cpu\":null"), "{text}");
        assert_eq!(serde_json::from_str::<Results>(&text).unwrap(), r);
    }

    #[test]
    fn compare_divides_b_by_a_and_reads_each_direction() {
        let a = results(vec![
            Row::new("t", "throughput", 1000.0, "posts/s", Better::Higher).cpu(1.0, "ms/post"),
            Row::new("m", "memory", 1000.0, "B/order", Better::Lower),
            Row::new("gone", "only in A", 1.0, "", Better::Lower),
            Row::new("zero", "zero in A", 0.0, "", Better::Lower),
        ]);
        let b = results(vec![
            Row::new("t", "throughput", 1500.0, "posts/s", Better::Higher).cpu(0.5, "ms/post"),
            Row::new("m", "memory", 1200.0, "B/order", Better::Lower),
            Row::new("zero", "zero in A", 3.0, "", Better::Lower),
            Row::new("new", "only in B", 1.0, "", Better::Lower),
        ]);
        let table = compare(&a, "a.json", &b, "b.json");
        let row = |id: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("| {id} |")))
                .unwrap_or_else(|| panic!("{id} in\n{table}"))
                .to_string()
        };
        assert!(row("t").contains("| 1.50 | better"), "{table}");
        assert!(row("t CPU").contains("| 0.50 | better"), "{table}");
        assert!(row("m").contains("| 1.20 | worse"), "{table}");
        assert!(row("zero").contains("| n/a |"), "{table}");
        assert!(table.contains("Only in A: gone."), "{table}");
        assert!(table.contains("Only in B: new."), "{table}");
        let same = compare(&a, "a", &a, "a");
        assert!(same.contains("| 1.00 | same"), "{same}");
    }

    #[test]
    fn numbers_keep_three_significant_figures_or_so() {
        assert_eq!(number(2383.4), "2383");
        assert_eq!(number(38.84), "38.8");
        assert_eq!(number(1.439), "1.44");
        assert_eq!(number(0.4394), "0.439");
    }
}
