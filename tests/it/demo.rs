//! The demo's logic on a small input: it verifies, and its verification can fail.

use std::time::Duration;

use catering_sync::demo::{self, DemoOptions};
use catering_sync::sandbox::Faults;

#[test]
fn the_demo_verifies_a_small_run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let options = DemoOptions {
        orders: 80,
        ..DemoOptions::default()
    };
    let (report, stack) = rt
        .block_on(demo::run(&options, Box::new(|_, _| {}), false))
        .unwrap();
    assert!(stack.is_none());
    assert!(report.verification.ok(), "{report}");
    assert_eq!(report.orders, 80);
    assert_eq!(report.bad_events, 7);
    assert_eq!(report.dead_letters.values().sum::<usize>(), 7, "{report}");
    assert!(report.acknowledged >= 80, "{report}");
    let text = report.to_string();
    assert!(
        text.contains("VERIFIED") && text.contains("post latency p50 / p99"),
        "{text}"
    );
}

#[test]
fn the_demo_verification_fails_when_the_sandbox_rejects_everything() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let options = DemoOptions {
        orders: 20,
        faults: Faults {
            unauthorized: true,
            ..Faults::default()
        },
        deadline: Duration::from_secs(12),
        ..DemoOptions::default()
    };
    let (report, _) = rt
        .block_on(demo::run(&options, Box::new(|_, _| {}), false))
        .unwrap();
    assert!(!report.verification.ok(), "{report}");
    assert!(report.to_string().contains("NOT VERIFIED"));
    assert!(
        report
            .verification
            .problems
            .iter()
            .any(|p| p.contains("statuses at the sandbox")),
        "{:?}",
        report.verification.problems
    );
}
