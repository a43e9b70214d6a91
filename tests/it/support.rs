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
    // The delivery history: the acknowledged posts, the last one the PAY_SUCCESS, each with
    // WeChat Pay's Request-ID.
    let posts = state["deliveries"].as_array().unwrap();
    assert!(!posts.is_empty() && posts.len() <= 4, "{state}");
    let last = posts.last().unwrap();
    assert_eq!(last["status"], "PAY_SUCCESS", "{state}");
    assert!(
        last["at"].as_str().is_some() && last["request_id"].as_str().is_some(),
        "{state}"
    );

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
