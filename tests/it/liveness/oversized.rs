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
