//! Orders that never become final (issue 11, finding 7): an order never paid (`CREATE_DEAL`
//! only) or a draft (no status) is tombstoned once it has not changed for
//! `state.non_final_retention_secs`, counted in `catering_sync_orders_expired_total`, and not
//! restored after a restart. A late event for an expired order starts a new snapshot from that
//! event alone (SPEC §3): a partial one is dead-lettered `invalid_snapshot`, never posted.
//! (Before: such orders stayed in memory and in the changelog for good.)

use std::time::Duration;

use catering_sync::dead_letter::header_value;
use catering_sync::sandbox::Faults;
use serde_json::json;

use crate::broker::{Broker, Outgoing, TestBroker};
use crate::harness::eventually;
use crate::stack::*;

/// Short retentions (the bounds allow 1 s) and a sweep every second.
const SHORT: &str =
    "[state]\nfinal_retention_secs = 1\nnon_final_retention_secs = 2\nsweep_interval_secs = 1";

/// One series of the running app's `/metrics`, e.g. `name{label="v"}`.
async fn series(app: &RunningApp, series: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", app.http_addr);
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A draft: an event without a status (field rules only, never posted).
fn draft(no: &str) -> Outgoing {
    let event = json!({"event_id": format!("{no}-1"), "out_order_no": no,
        "occurred_at": "2026-11-27T12:30:00+08:00", "seq": 1,
        "patch": {"out_shop_no": "SHOP-1", "order_entry": "pages/menu/index"}});
    Outgoing::keyed(no, event.to_string())
}

/// Orders whose latest changelog record is not a tombstone.
async fn not_tombstoned(broker: &TestBroker, names: &Names, keys: &[String]) -> Vec<String> {
    let records = broker.read_all(&names.changelog).await;
    keys.iter()
        .filter(|k| {
            records
                .iter()
                .rev()
                .find(|r| r.key.as_deref() == Some(k.as_bytes()))
                .is_none_or(|r| r.value.is_some())
        })
        .cloned()
        .collect()
}

/// Wait until every event is committed, every one of `keys` ends in a tombstone and the
/// non-final expiry counter reached `at_least`; then no order is held.
async fn expect_swept(
    app: &RunningApp,
    broker: &TestBroker,
    names: &Names,
    keys: &[String],
    ends: &std::collections::BTreeMap<i32, i64>,
) {
    let at_least = Some(keys.len() as f64);
    let swept = eventually(Duration::from_secs(60), || async {
        all_committed(broker, names, ends, 1).await
            && not_tombstoned(broker, names, keys).await.is_empty()
            && series(app, EXPIRED).await >= at_least
    })
    .await;
    assert!(
        swept,
        "non-final orders tombstoned after their retention: not tombstoned {:?}; {EXPIRED} = {:?}; \
         tracked orders {:?}; committed {:?} of {ends:?}",
        not_tombstoned(broker, names, keys).await,
        series(app, EXPIRED).await,
        series(app, "catering_sync_tracked_orders").await,
        broker.committed(&names.group, &names.input, 1).await,
    );
    assert_eq!(series(app, "catering_sync_tracked_orders").await, Some(0.0));
}

/// Start the service and wait until its partition is assigned and restored.
async fn start_ready(config: &str) -> RunningApp {
    let app = RunningApp::start(config).await;
    let ready = eventually(Duration::from_secs(60), || async {
        series(&app, "catering_sync_assigned_partitions").await == Some(1.0)
            && app.readyz().await == 200
    })
    .await;
    assert!(ready, "the service is assigned its partition and ready");
    app
}

const EXPIRED: &str = "catering_sync_orders_expired_total{state=\"non_final\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_final_orders_are_tombstoned_after_their_retention_and_not_restored() {
    let (broker, names, sandbox) = tansu_stack(1, Faults::default()).await;
    // Five orders placed (CREATE_DEAL, then an update) and never paid, and one draft.
    let orders = gen_orders("NF", 5);
    let mut records: Vec<Outgoing> = orders
        .iter()
        .flat_map(|o| {
            o.events[..2]
                .iter()
                .map(|e| Outgoing::keyed(o.no.clone(), e.clone()))
        })
        .collect();
    records.push(draft("NFDRAFT"));
    let ends = ends(&broker.produce_batch(&names.input, records).await);
    let mut keys: Vec<String> = orders.iter().map(|o| o.no.clone()).collect();
    keys.push("NFDRAFT".into());
    let (bootstrap, url) = (broker.bootstrap(), sandbox.base_url());
    let short = config_text(&bootstrap, &names, &url, SHORT);
    let app = RunningApp::start(&short).await;
    expect_swept(&app, &broker, &names, &keys, &ends).await;
    for o in &orders {
        let posts = sandbox.posts(&o.no);
        assert!(
            !posts.is_empty()
                && posts
                    .iter()
                    .all(|p| p.status.as_deref() == Some("CREATE_DEAL")),
            "{}: delivered as CREATE_DEAL before it expired: {posts:?}",
            o.no
        );
    }
    assert!(
        sandbox.posts("NFDRAFT").is_empty(),
        "a draft is never posted"
    );
    app.stop().await.unwrap();

    // A restart (the default, long retention now: nothing is swept) restores none of them.
    let app = start_ready(&config_text(&bootstrap, &names, &url, "")).await;
    let restored = series(&app, "catering_sync_tracked_orders").await;
    assert_eq!(restored, Some(0.0), "no expired order is restored");
    late_event_for_an_expired_order(&broker, &names, &sandbox, &orders[0]).await;
    // A new order, restored by the next start with the short retention, expires there too.
    let new = gen_orders("NFNEW", 1);
    let record = Outgoing::keyed(new[0].no.clone(), new[0].events[0].clone());
    let ends = crate::stack::ends(&broker.produce_batch(&names.input, vec![record]).await);
    let placed = eventually(Duration::from_secs(60), || async {
        all_committed(&broker, &names, &ends, 1).await
    })
    .await;
    assert!(
        placed && sandbox.posts(&new[0].no).len() == 1,
        "a new order is placed"
    );
    app.stop().await.unwrap();
    let app = RunningApp::start(&short).await;
    expect_swept(&app, &broker, &names, &[new[0].no.clone()], &ends).await;
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// A late event for an expired order starts a new snapshot from itself alone: a payment without
/// the order's fields is an invalid snapshot, dead-lettered, never posted.
async fn late_event_for_an_expired_order(
    broker: &TestBroker,
    names: &Names,
    sandbox: &catering_sync::sandbox::SandboxHandle,
    order: &GenOrder,
) {
    let late = Outgoing::keyed(order.no.clone(), order.events[2].clone());
    let ends = ends(&broker.produce_batch(&names.input, vec![late]).await);
    let committed = eventually(Duration::from_secs(60), || async {
        all_committed(broker, names, &ends, 1).await
    })
    .await;
    assert!(committed, "the late event is committed past");
    let dlq = broker.read_all(&names.dlq).await;
    assert_eq!(dlq.len(), 1, "only the late event is dead-lettered");
    assert_eq!(
        header_value(&dlq[0].headers, "catering-sync.reason"),
        Some("invalid_snapshot")
    );
    let posts = sandbox.posts(&order.no);
    assert!(
        posts
            .iter()
            .all(|p| p.status.as_deref() == Some("CREATE_DEAL")),
        "the late payment is never posted: {posts:?}"
    );
}
