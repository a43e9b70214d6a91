//! A panicking order task (a bug's stand-in, by the test-only hook) must not leave its order and
//! its partition stuck with `/readyz` green: the process exits 1, and a restarted process
//! delivers everything from the write-ahead state. (Before: `finished` logged "order task
//! failed" and went on; the task's offsets became a hole no commit passed.)

use std::time::Duration;

use crate::broker::Broker;
use crate::stack::*;

/// The log lines about the panic (JSON lines; the panic message itself is on stderr too).
fn panic_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("panic") || l.contains("order task"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_order_task_exits_and_a_restart_delivers_everything() {
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        ends,
        ..
    } = Scenario::new("PNC", 10).partitions(1).produce().await;
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let mut app = ChildApp::spawn_with_env(
        &config,
        "info",
        &[("CATERING_SYNC_CRASH_AT", "panic_in_task:5")],
    );
    let Some(status) = app.wait_exit(Duration::from_secs(60)).await else {
        // The defect: the process goes on, its partition's commit stuck below the panicked
        // task's first offset for good.
        let committed = broker.committed(&names.group, &names.input, 1).await;
        panic!(
            "still running 60 s after an order task panicked: committed {committed:?} of the \
             ends {ends:?}; {} posts accepted; log: {}",
            sandbox.stats().accepted,
            panic_lines(&app.log_text())
        );
    };
    assert_eq!(
        status.code(),
        Some(1),
        "a panicked task exits 1: {}",
        app.log_text()
    );
    let log = app.log_text();
    assert!(
        log.contains("the order task of this order panicked") && log.contains("out_order_no"),
        "the order and its partition are logged: {log}"
    );
    eprintln!("exited {status}: {}", panic_lines(&log));
    let restarted = ChildApp::spawn(&config);
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        1,
        Duration::from_secs(90),
    )
    .await;
    assert!(
        done,
        "delivered after the restart: {}",
        restarted.log_text()
    );
    assert!(check_history(&sandbox, &orders).is_ok());
    sandbox.shutdown().await;
}
