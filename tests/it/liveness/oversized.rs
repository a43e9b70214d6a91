//! Records at and past the size limits, with the default configuration (no scaling down):
//! a 2 MiB record, one of exactly `pipeline.max_event_bytes` and one a byte above. Each is
//! dead-lettered — the one that cannot fit as a truncated copy carrying its size and SHA-256 —
//! the partition's commit moves past all of them, and later events are delivered. (Before: the
//! 2 MiB dead letter failed with `MessageSizeTooLarge` every 5 s for good and the partition's
//! commit stood still.)

use std::time::Duration;

use sha2::Digest;

use catering_sync::dead_letter::{header, header_value};
use catering_sync::sandbox::Faults;

use crate::broker::{Broker, Outgoing};
use crate::stack::*;

fn json_of_len(len: usize) -> Vec<u8> {
    let pad = len - br#"{"x":""}"#.len();
    [br#"{"x":""#.to_vec(), vec![b'a'; pad], br#""}"#.to_vec()].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_at_and_past_the_size_limits_are_dead_lettered_and_passed() {
    let (broker, names, sandbox) = tansu_stack(1, Faults::default()).await;
    let limit = 1 << 20; // pipeline.max_event_bytes by default
    let big: Vec<(&str, Vec<u8>)> = vec![
        ("big-2mib", json_of_len(2 << 20)),
        ("big-at-limit", json_of_len(limit)),
        ("big-limit-plus-1", json_of_len(limit + 1)),
    ];
    let before = gen_orders("SZA", 5);
    let after = gen_orders("SZB", 5);
    let mut records = interleave(&before, 0);
    records.extend(big.iter().map(|(k, v)| Outgoing::keyed(*k, v.clone())));
    records.extend(interleave(&after, 0));
    let delivered = broker.produce_batch(&names.input, records).await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    let mut all = before.clone();
    all.extend(after.iter().cloned());
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &all,
        &ends,
        1,
        Duration::from_secs(90),
    )
    .await;
    assert!(
        done,
        "committed past the big records and delivered the rest: {:?}; committed {:?} of {ends:?}",
        check_delivered(&sandbox, &all),
        broker.committed(&names.group, &names.input, 1).await
    );
    let dead = broker.read_all(&names.dlq).await;
    for (key, value) in &big {
        let dl = dead
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} dead-lettered"));
        let reason = header_value(&dl.headers, header::REASON);
        assert!(reason.is_some(), "{key}: a reason");
        let kept = dl.value.as_deref().unwrap_or_default();
        match header_value(&dl.headers, header::TRUNCATED) {
            Some(note) => {
                let sha = catering_sync::snapshot::body::hex(&sha2::Sha256::digest(value));
                assert!(
                    note.contains(&format!("bytes={}", value.len())),
                    "{key}: {note}"
                );
                assert!(note.contains(&format!("sha256={sha}")), "{key}: {note}");
                assert!(
                    value.starts_with(kept) && kept.len() < value.len(),
                    "{key}: a prefix"
                );
                assert!(header_value(&dl.headers, header::SOURCE).is_some());
            }
            None => assert_eq!(kept, value.as_slice(), "{key}: the whole original"),
        }
    }
    let two_mib = dead
        .iter()
        .find(|r| r.key.as_deref() == Some(b"big-2mib".as_slice()))
        .unwrap();
    assert!(
        header_value(&two_mib.headers, header::TRUNCATED).is_some(),
        "a 2 MiB record cannot fit: truncated"
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

fn event(no: &str, seq: u64, patch: serde_json::Value) -> Vec<u8> {
    serde_json::json!({"event_id": format!("{no}-{seq}"), "out_order_no": no,
           "occurred_at": "2026-11-27T12:30:00+08:00", "seq": seq, "patch": patch})
    .to_string()
    .into_bytes()
}

fn dishes(n: usize) -> serde_json::Value {
    (0..n)
        .map(|i| serde_json::json!({"out_dish_no": format!("DISH-{i:05}"), "name": format!("菜品{i:05}"), "price": 1000, "unit": "BY_SHARE", "count": 1}))
        .collect()
}

/// Issue 14's defect: the delivery history rides on every state record of an order, so an order
/// whose state record is close to the largest record the changelog takes was refused once it had
/// a history (`MessageSizeTooLarge`, a permanent error: the pod went not ready, the partition
/// stalled and, past `produce_fault_exit_ms`, the process exited). Here the producer's
/// `message.max.bytes` (what librdkafka refuses before the broker; a topic's
/// `max.message.bytes` does the same on the broker) is set just above the order's last state
/// record without its history. The history is left off that record; every post is acknowledged
/// and committed; a small order of the same partition keeps its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_at_the_record_size_limit_is_written_without_its_delivery_history() {
    use catering_sync::event::{decode, DecodeLimits};
    use catering_sync::snapshot::{Defaults, OrderState};
    let (broker, names, sandbox) = tansu_stack(1, Faults::default()).await;
    let no = "SZH-BIG-000001";
    let create = serde_json::json!({
        "sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
        "openid": "oUser000001", "out_shop_no": "SHOP-1", "login_token": "LT-TEST-ONLY",
        "order_entry": "pages/menu/index", "total_amount": 150_000, "discount_amount": 0,
        "user_amount": 150_000, "status": "CREATE_DEAL", "dish_list": dishes(150)});
    let mut events = vec![event(no, 1, create)];
    for (seq, n) in [(2, 151), (3, 152), (4, 153)] {
        let amount = 1000 * n as u64;
        events.push(event(
            no,
            seq,
            serde_json::json!({"total_amount": amount, "user_amount": amount, "dish_list": dishes(n)}),
        ));
    }
    // The order's last write-ahead record, as the service writes it.
    let mut last = OrderState::default();
    for e in &events {
        last.apply(
            &decode(e, &DecodeLimits::default()).unwrap(),
            &Defaults::default(),
        );
    }
    let record = last.write_ahead_bytes(no).len() + no.len();
    // Room for the record's framing and the epoch header, not for a history of three posts
    // (each about 100 bytes).
    let limit = record + 200;
    let text = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        &format!("[kafka.producer]\n\"message.max.bytes\" = \"{limit}\"\n"),
    );
    let app = RunningApp::start(&text).await;
    let small = gen_orders("SZH-SMALL", 1);
    broker
        .produce_batch(&names.input, interleave(&small, 0))
        .await;
    // One event at a time, each acknowledged before the next: the history grows by one post.
    let mut ends = std::collections::BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let at = broker
            .produce_batch(&names.input, vec![Outgoing::keyed(no, e.clone())])
            .await;
        ends = crate::stack::ends(&at);
        let posted = crate::harness::eventually(Duration::from_secs(60), || async {
            sandbox.posts(no).len() > i
        })
        .await;
        assert!(
            posted,
            "event {} of the big order acknowledged (posts: {}, ready: {})",
            i + 1,
            sandbox.posts(no).len(),
            app.readyz().await
        );
    }
    let committed = crate::harness::eventually(Duration::from_secs(30), || async {
        all_committed(&broker, &names, &ends, 1).await
    })
    .await;
    assert!(committed, "the partition's commit passes the big order");
    assert!(
        check_delivered(&sandbox, &small).is_ok(),
        "the small order delivered"
    );
    assert_eq!(sandbox.posts(no).len(), 4, "one post per change");
    assert_eq!(app.readyz().await, 200, "ready: nothing was refused");
    let changelog = broker.read_all(&names.changelog).await;
    let newest = |key: &str| {
        changelog
            .iter()
            .rfind(|r| r.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("a changelog record of {key}"))
    };
    let has = |r: &crate::broker::Record, h: &str| r.headers.iter().any(|(k, _)| k == h);
    let big = newest(no);
    assert!(has(big, catering_sync::state::EPOCH_HEADER));
    assert!(
        !has(big, catering_sync::state::DELIVERIES_HEADER),
        "the big order's last record leaves its history off"
    );
    assert!(
        has(
            newest(&small[0].no),
            catering_sync::state::DELIVERIES_HEADER
        ),
        "a small order keeps its history"
    );
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "nothing dead-lettered"
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}
