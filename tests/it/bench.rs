//! `bench all` runs end to end on a tiny input: every part produces its row. This is not a
//! timed test: it checks that the benchmark works, not what it measures (README, "Benchmarks").

use std::process::Command;

use crate::broker::tansu_binary;

const BIN: &str = env!("CARGO_BIN_EXE_catering-sync");

/// The number before `unit` in a table row.
fn figure(row: &str, unit: &str) -> f64 {
    let end = row
        .find(unit)
        .unwrap_or_else(|| panic!("{unit:?} in {row}"));
    let start = row[..end].trim_end().rfind(' ').map_or(0, |i| i + 1);
    row[start..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("number before {unit:?} in {row}"))
}

#[test]
fn bench_all_runs_every_part_on_a_tiny_input() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(BIN)
        .args([
            "bench",
            "all",
            "--sign-seconds",
            "0.2",
            "--seconds",
            "1",
            "--latency-seconds",
            "1",
            "--warmup-seconds",
            "0.5",
            "--backlog-orders",
            "5000",
            "--restore-orders",
            "2000",
            "--memory-orders",
            "2000",
            "--tansu",
        ])
        .arg(tansu_binary())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix:?} in\n{stdout}"))
            .to_string()
    };
    assert!(figure(&row("| 1 | signing ceiling, 1 thread"), " signs/s") > 0.0);
    for run in [
        "| 2 | end to end, 0 ms",
        "| 2 | end to end, 50 ms",
        "| 2/3 |",
    ] {
        let r = row(run);
        assert!(figure(&r, " posts/s") > 0.0, "{r}");
        assert!(figure(&r, " ms/post") > 0.0, "{r}");
    }
    assert!(figure(&row("| 4 | restore 2000 orders"), " records/s") > 0.0);
    assert!(figure(&row("| 5 | memory, 2000 orders"), " B/order") > 0.0);
    let latency = row("| 6 | produced → POST");
    assert!(
        latency.contains("p99") && latency.contains("broker hop"),
        "{latency}"
    );
    assert!(
        !stdout.contains("backlog ran out"),
        "10,000 events outlast 1.5 s of posting: {stdout}"
    );
    // Issue 15: the latency target is judged on the mock cluster; tansu's rows are references.
    assert!(latency.contains("MockCluster"), "{latency}");
    for reference in ["| 6t | produced → POST", "| 6b | produced → POST"] {
        let r = row(reference);
        assert!(r.contains("p99") && r.contains("tansu"), "{r}");
    }
    assert!(figure(&row("| 5b | memory, 200 orders of 50 dishes"), " B/order") > 0.0);
    scaling_rows(&row);
    json_and_compare(&json);
}

/// The scaling rows of a tiny `bench all`.
fn scaling_rows(row: &dyn Fn(&str) -> String) {
    let pinned = row("| 7 | scaling: the service pinned to CPU 0");
    assert!(
        pinned.contains("skipped: taskset not found") || figure(&pinned, " posts/s") > 0.0,
        "{pinned}"
    );
    for partitions in ["1 input partition,", "4 input", "16 input", "64 input"] {
        let r = row(&format!("| 7 | scaling: {partitions}"));
        assert!(figure(&r, " posts/s") > 0.0, "{r}");
        assert!(figure(&r, " ms/post") > 0.0, "{r}");
    }
    for orders in [400, 2000, 4000] {
        let r = row(&format!(
            "| 8 | restore against state size: {orders} orders"
        ));
        assert!(figure(&r, " records/s") > 0.0, "{r}");
    }
    let growth = row("| 8 | restore growth, 400 → 4000 orders");
    assert!(figure(&growth, " × the records/s") > 0.0, "{growth}");
}

/// `--json` holds every row once with its target where there is one, and `bench compare` of
/// the file with itself reads 1.00 everywhere.
fn json_and_compare(json: &std::path::Path) {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let rows = doc["rows"].as_array().expect("rows");
    let ids: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "ids are unique: {doc}");
    for r in rows {
        assert!(r["value"].as_f64().is_some_and(f64::is_finite), "{r}");
        assert!(
            ["higher", "lower"].contains(&r["better"].as_str().unwrap()),
            "{r}"
        );
    }
    let find = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row {id} in {doc}"))
    };
    let p99 = find("6/added-p99");
    assert_eq!(p99["target"], "≤ 20 ms", "{p99}");
    assert!(p99["met"].is_boolean(), "{p99}");
    assert!(find("6/service-cpu")["value"].as_f64().unwrap() > 0.0);
    assert_eq!(find("6t/added-p99")["met"], serde_json::Value::Null);
    assert!(find("2/0ms/efficiency")["met"].is_boolean());
    assert_eq!(find("4/restore")["target"], "≥ 500000/s");
    assert_eq!(find("5/dishes-5")["target"], "≤ 1024 B");
    for id in ["7/partitions-64", "8/0.2x", "8/2x", "8/linearity"] {
        find(id);
    }
    let out = Command::new(BIN)
        .args(["bench", "compare"])
        .args([json, json])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}
{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| id |"))
        .collect();
    assert!(lines.len() >= rows.len(), "a line per row: {table}");
    for l in &lines {
        assert!(
            l.contains("| 1.00 | same") || l.contains("| n/a |"),
            "compared with itself: {l}"
        );
    }
    assert!(!table.contains("Only in"), "{table}");
}
