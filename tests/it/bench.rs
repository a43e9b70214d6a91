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
}
