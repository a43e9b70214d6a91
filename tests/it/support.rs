//! `catering-sync order show` against a running stack (issue 14, 8): an order delivered, one
//! dead-lettered, one never seen; read-only (the running member keeps its partitions: no
//! rebalance), and `login_token` and the openids never printed.

use std::time::Duration;

use serde_json::Value;

use crate::broker::{Broker, Outgoing};
use crate::harness::eventually;
use crate::stack::*;

fn order_show(config: &std::path::Path, no: &str, json: bool) -> (Option<i32>, String) {
    let mut args = vec!["order", "show", no, "--config", config.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let out = std::process::Command::new(service_binary())
        .args(&args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The history `order show` printed: (status, Request-ID) of each acknowledged post.
fn deliveries(state: &Value) -> Vec<(String, String)> {
    state["deliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("a history: {state}"))
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap().to_string(),
                d["request_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (status, Request-ID) of each post the sandbox accepted for the order, in arrival order.
fn accepted(sandbox: &catering_sync::sandbox::SandboxHandle, no: &str) -> Vec<(String, String)> {
    sandbox
        .posts(no)
        .into_iter()
        .map(|p| (p.status.unwrap_or_default(), p.request_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_show_tells_delivered_dead_lettered_and_never_seen_apart() {
    let (broker, names, sandbox) = tansu_stack(2, Default::default()).await;
    let orders = gen_orders("SHOW", 3);
    let mut records = interleave(&orders, 0);
    // An order whose first event is invalid: dead-lettered (no state is kept for it).
    let bad = serde_json::json!({"event_id": "SHOWBAD-1", "out_order_no": "SHOWBAD", "occurred_at": "2026-11-27T12:30:00+08:00",
        "patch": {"status": "PAY_SUCCESS", "login_token": "LT-SHOW-SECRET"}});
    records.push(Outgoing::keyed("SHOWBAD", bad.to_string().into_bytes()));
    let delivered = broker.produce_batch(&names.input, records).await;
    let text = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let app = RunningApp::start(&text).await;
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends(&delivered),
        2,
        Duration::from_secs(90),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    let dead = eventually(Duration::from_secs(30), || async {
        broker.read_all(&names.dlq).await.len() == 1
    })
    .await;
    assert!(dead, "the bad event dead-lettered");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("catering-sync.toml");
    std::fs::write(&config, &text).unwrap();
    let rebalances = metric_sum(&app, "catering_sync_rebalances_total").await;

    // Delivered: PAY_SUCCESS acknowledged, the snapshot shown with its secrets redacted.
    let no = orders[0].no.as_str();
    let (code, out) = order_show(&config, no, true);
    assert_eq!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(
        report["verdict"]
            .as_str()
            .unwrap()
            .starts_with("delivered: PAY_SUCCESS acknowledged"),
        "{report}"
    );
    let state = &report["state"];
    assert_eq!(state["status"], "PAY_SUCCESS");
    assert_eq!(state["kind"], "acknowledged");
    assert!(state["acked_digest"]
        .as_str()
        .is_some_and(|d| d.len() == 64));
    assert!(state["applied_events"].as_u64().unwrap() >= 2);
    assert_eq!(state["snapshot"]["login_token"], "[redacted]");
    assert!(state["committed_input_offset"].as_i64().is_some());
    assert_eq!(report["dead_letters"], serde_json::json!([]));
    // The delivery history: exactly the posts the sandbox acknowledged (1 to 3: events
    // consumed together are one post), in order, each with the Request-ID the sandbox answered.
    let history = deliveries(state);
    let accepted = accepted(&sandbox, no);
    assert_eq!(history, accepted, "{state}");
    assert_eq!(history.last().unwrap().0, "PAY_SUCCESS");
    assert!(state["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["at"].as_str().is_some()));

    // Dead-lettered: the reason and the source, and no token anywhere.
    let (code, out) = order_show(&config, "SHOWBAD", true);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("LT-SHOW-SECRET"), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let letters = report["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{report}");
    assert_eq!(letters[0]["reason"], "invalid_snapshot");
    assert!(letters[0]["source"]
        .as_str()
        .is_some_and(|s| s.starts_with(&names.input)));
    assert!(report["verdict"]
        .as_str()
        .unwrap()
        .contains("invalid_snapshot"));

    // Never seen.
    let (code, out) = order_show(&config, "SHOW-NEVER-PUBLISHED", false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("never seen"), "{out}");
    // And the text form of a delivered one.
    let (_, out) = order_show(&config, no, false);
    assert!(
        out.contains("status: PAY_SUCCESS")
            && out.contains("[redacted]")
            && out.contains("acknowledged post: PAY_SUCCESS at"),
        "{out}"
    );

    // Read-only: the running member was not disturbed (no rebalance) and still works.
    assert_eq!(
        metric_sum(&app, "catering_sync_rebalances_total").await,
        rebalances
    );
    assert_eq!(app.readyz().await, 200);
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}

/// The history survives the member that kept it: posts acknowledged before a restart are
/// restored from the changelog header by the next member and written again with its own.
/// (Without the restore of the header, the history after the restart starts empty and the first
/// post's Request-ID is gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delivery_history_is_restored_across_a_restart() {
    let (broker, names, sandbox) = tansu_stack(1, Default::default()).await;
    let orders = gen_orders("SHOWR", 2);
    let text = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let app = RunningApp::start(&text).await;
    // Create, acknowledged; then the update, whose write-ahead record carries the create's post.
    for (round, want) in [(0, 1), (1, 2)] {
        let records: Vec<Outgoing> = orders
            .iter()
            .map(|o| Outgoing::keyed(o.no.clone(), o.events[round].clone()))
            .collect();
        broker.produce_batch(&names.input, records).await;
        let posted = eventually(Duration::from_secs(60), || async {
            orders.iter().all(|o| sandbox.posts(&o.no).len() >= want)
        })
        .await;
        assert!(posted, "round {round} acknowledged");
    }
    let before: Vec<_> = orders.iter().map(|o| accepted(&sandbox, &o.no)).collect();
    app.stop().await.expect("clean stop");

    // A new member restores the partition, then the payment arrives.
    let app = RunningApp::start(&text).await;
    let records: Vec<Outgoing> = orders
        .iter()
        .map(|o| Outgoing::keyed(o.no.clone(), o.events[2].clone()))
        .collect();
    let delivered = broker.produce_batch(&names.input, records).await;
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends(&delivered),
        1,
        Duration::from_secs(90),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("catering-sync.toml");
    std::fs::write(&config, &text).unwrap();
    for (o, before) in orders.iter().zip(&before) {
        let (code, out) = order_show(&config, &o.no, true);
        assert_eq!(code, Some(0), "{out}");
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let history = deliveries(&report["state"]);
        let all = accepted(&sandbox, &o.no);
        // The create's post, acknowledged by the first member, is still there, first.
        assert_eq!(history.first(), before.first(), "{}: {history:?}", o.no);
        assert_eq!(history.last().unwrap().0, "PAY_SUCCESS");
        assert_eq!(history.last(), all.last());
        // Every entry is a post the sandbox acknowledged, in the order it did: the update's may
        // be missing (a non-final acknowledgement is recorded with the order's next change, and
        // the first member stopped before one), never invented or reordered.
        let mut rest = all.iter();
        assert!(
            history.iter().all(|h| rest.any(|a| a == h)),
            "{}: {history:?} within {all:?}",
            o.no
        );
    }
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}
