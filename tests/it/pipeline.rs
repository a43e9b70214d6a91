//! The pipeline against a real broker process (tansu) and the sandbox over HTTP.

use std::time::Duration;

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, TestBroker};
use crate::harness::eventually;
use crate::stack::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_500_orders_reach_the_sandbox_in_order_and_are_committed() {
    let Running {
        broker,
        names,
        sandbox,
        orders,
        ends,
        app,
        ..
    } = Scenario::new("E2E", 500)
        .partitions(4)
        .dup_every(10)
        .start()
        .await;
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        4,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        done,
        "not all delivered and committed: {:?}; stats {:?}",
        check_delivered(&sandbox, &orders),
        sandbox.stats()
    );
    app.stop().await.expect("clean stop");
    // The changelog holds every order, acknowledged.
    let records = broker.read_all(&names.changelog).await;
    let mut latest = std::collections::HashMap::new();
    for r in records {
        latest.insert(r.key.clone().unwrap(), r.value.clone());
    }
    for o in &orders {
        let v: serde_json::Value =
            serde_json::from_slice(latest[o.no.as_bytes()].as_ref().expect("not a tombstone"))
                .unwrap();
        assert_eq!(v["snapshot"]["status"], "PAY_SUCCESS", "{}", o.no);
        assert!(v["acked_digest"].is_string(), "{}", o.no);
    }
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "no dead letters"
    );
    sandbox.shutdown().await;
}

/// Samples of committed offsets, taken while the sandbox adds latency, never pass an event whose
/// post had not been accepted by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_commits_before_204() {
    let (broker, names, sandbox) = tansu_stack(
        2,
        Faults {
            latency_ms: 150,
            jitter_ms: 100,
            ..Faults::default()
        },
    )
    .await;
    let orders = gen_orders("NC", 60);
    let records = interleave(&orders, 0);
    // What each record needs to be covered: the order and the event's index (0 create, 1 update, 2 pay).
    let mut what = Vec::new();
    let max = 3;
    for round in 0..max {
        for o in &orders {
            what.push((o.no.clone(), round));
        }
    }
    let delivered = broker.produce_batch(&names.input, records).await;
    let coords: std::collections::HashMap<(i32, i64), (String, usize)> =
        delivered.iter().cloned().zip(what).collect();
    let ends = ends(&delivered);
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    let mut samples = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let t_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let committed = broker.committed(&names.group, &names.input, 2).await;
        for (p, c) in committed.iter().filter_map(|(p, c)| c.map(|c| (*p, c))) {
            for offset in 0..c {
                let (no, idx) = &coords[&(p, offset)];
                let posts = sandbox.posts(no);
                let covered = posts
                    .iter()
                    .filter(|post| post.received_at_ms <= t_ms)
                    .any(|post| {
                        let body = post.body.as_ref().unwrap();
                        match idx {
                            0 => true,
                            1 => body["dish_list"].as_array().map_or(0, Vec::len) == 3,
                            _ => body["status"] == "PAY_SUCCESS",
                        }
                    });
                assert!(covered, "partition {p} committed {c} past offset {offset} ({no} event {idx}) before WeChat Pay accepted it");
            }
        }
        samples += 1;
        if all_committed(&broker, &names, &ends, 2).await {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not finish: {:?}",
            sandbox.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(samples >= 5, "sampled while running ({samples} samples)");
    check_delivered(&sandbox, &orders).unwrap();
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// Every malformed kind, produced as a real record among good orders: dead-lettered with the right
/// reason and headers, the original bytes kept; consumption continues and offsets pass them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_poison_events_and_commits_past_them() {
    use catering_sync::dead_letter::header_value;
    let (broker, names, sandbox) = tansu_stack(2, Faults::default()).await;
    let orders = gen_orders("PZ", 40);
    let mut records = interleave(&orders, 0);
    // The decoding failures of the snapshot issue (the 2 MiB case against a 100 kB limit here).
    let mut expected: Vec<(Vec<u8>, &'static str)> = Vec::new();
    for (name, bytes, reason, _) in crate::events::cases() {
        let bytes = if name == "a 2 MiB value" {
            [b"{\"x\":\"".to_vec(), vec![b'a'; 150_000], b"\"}".to_vec()].concat()
        } else {
            bytes
        };
        let r =
            if reason == catering_sync::event::DecodeReason::Malformed || name == "a 2 MiB value" {
                "malformed"
            } else {
                "invalid_event"
            };
        expected.push((bytes.clone(), r));
        records.push(crate::broker::Outgoing::keyed(
            format!("poison-{name}"),
            bytes,
        ));
    }
    // No key: invalid_event. A regression and an invalid snapshot: merge-level rejections.
    let keyless_value = serde_json::json!({"event_id": "nokey", "out_order_no": "PZ-NOKEY", "occurred_at": "2026-11-27T12:50:00+08:00", "patch": {}}).to_string().into_bytes();
    let keyless = crate::broker::Outgoing {
        value: Some(keyless_value.clone()),
        ..Default::default()
    };
    expected.push((keyless_value, "invalid_event"));
    records.push(keyless);
    let regress = serde_json::json!({"event_id": "PZ000001-back", "out_order_no": "PZ000001", "occurred_at": "2026-11-27T12:50:00+08:00", "seq": 9, "patch": {"status": "CREATE_DEAL"}}).to_string().into_bytes();
    expected.push((regress.clone(), "status_regression"));
    records.push(crate::broker::Outgoing::keyed("PZ000001", regress));
    let invalid = serde_json::json!({"event_id": "x1", "out_order_no": "PZ-NEW", "occurred_at": "2026-11-27T12:50:00+08:00", "patch": {"status": "PAY_SUCCESS"}}).to_string().into_bytes();
    expected.push((invalid.clone(), "invalid_snapshot"));
    records.push(crate::broker::Outgoing::keyed("PZ-NEW", invalid));
    let delivered = broker.produce_batch(&names.input, records.clone()).await;
    let ends = ends(&delivered);
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[pipeline]\nmax_event_bytes = 100000",
    );
    let app = RunningApp::start(&config).await;
    let done = eventually(Duration::from_secs(90), || async {
        all_committed(&broker, &names, &ends, 2).await
    })
    .await;
    assert!(done, "offsets did not pass the poison records");
    check_delivered(&sandbox, &orders).unwrap();
    app.stop().await.unwrap();
    let dlq = broker.read_all(&names.dlq).await;
    assert_eq!(
        dlq.len(),
        expected.len(),
        "exactly the bad events are dead-lettered"
    );
    for (bytes, reason) in &expected {
        let dl = dlq
            .iter()
            .find(|r| r.value.as_deref() == Some(bytes.as_slice()))
            .unwrap_or_else(|| panic!("no dead letter for a {reason} record"));
        assert_eq!(
            header_value(&dl.headers, "catering-sync.reason"),
            Some(*reason)
        );
        let source = header_value(&dl.headers, "catering-sync.source").unwrap();
        let (p, o) = delivered[records
            .iter()
            .position(|r| r.value.as_deref() == Some(bytes.as_slice()))
            .unwrap()];
        assert_eq!(source, format!("{}/{p}/{o}", names.input));
        assert_eq!(
            header_value(&dl.headers, "catering-sync.group"),
            Some(names.group.as_str())
        );
        assert_eq!(
            header_value(&dl.headers, "catering-sync.attempts"),
            Some("0")
        );
        assert!(header_value(&dl.headers, "catering-sync.error").is_some_and(|e| !e.is_empty()));
        assert!(header_value(&dl.headers, "catering-sync.failed-at").is_some());
    }
    sandbox.shutdown().await;
}

/// A 20 s outage of WeChat Pay: the breaker opens, nothing is dead-lettered, and everything is
/// delivered once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_dead_letters_nothing_and_catches_up() {
    use catering_sync::sandbox::{Outage, OutageKind};
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let outage = Faults {
        outages: vec![Outage {
            start_ms: 0,
            duration_ms: 20_000,
            kind: OutageKind::Unavailable,
        }],
        ..Faults::default()
    };
    let sandbox = sandbox_with(outage).await;
    let orders = gen_orders("OUT", 100);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 0))
        .await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    let failing = eventually(Duration::from_secs(15), || async {
        sandbox
            .stats()
            .responses_by_status
            .get(&503)
            .copied()
            .unwrap_or(0)
            >= 3
    })
    .await;
    assert!(failing, "the outage is hit");
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        2,
        Duration::from_secs(90),
    )
    .await;
    assert!(done, "caught up after the outage: {:?}", sandbox.stats());
    app.stop().await.unwrap();
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "an outage never dead-letters"
    );
    sandbox.shutdown().await;
}

/// WeChat Pay answers 401 to everything: nothing is dead-lettered, the service is not ready, and
/// it recovers by itself once the signature is accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_401_pauses_everything_without_dead_letters_and_recovers() {
    let Running {
        broker,
        names,
        sandbox,
        orders,
        ends,
        app,
        ..
    } = Scenario::new("AUTH", 30)
        .faults(Faults {
            unauthorized: true,
            ..Faults::default()
        })
        .start()
        .await;
    let not_ready = eventually(Duration::from_secs(30), || async {
        sandbox.stats().responses_by_status.contains_key(&401) && app.readyz().await == 503
    })
    .await;
    assert!(not_ready, "not ready during a configuration fault");
    assert!(!app.health.is_ready());
    let committed = broker.committed(&names.group, &names.input, 2).await;
    assert!(
        committed.values().all(|c| c.unwrap_or(0) == 0),
        "nothing committed while WeChat Pay refuses us: {committed:?}"
    );
    sandbox.set_faults(Faults::default());
    let done = eventually(Duration::from_secs(60), || async {
        check_delivered(&sandbox, &orders).is_ok()
            && all_committed(&broker, &names, &ends, 2).await
            && app.readyz().await == 200
    })
    .await;
    assert!(done, "recovered: {:?}", sandbox.stats());
    app.stop().await.unwrap();
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "a configuration fault never dead-letters"
    );
    sandbox.shutdown().await;
}

/// State survives a restart: an order created before is paid after, and the PAY_SUCCESS body
/// carries the dish list from before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_state_so_a_payment_after_a_restart_carries_the_earlier_dishes() {
    let (broker, names, sandbox) = tansu_stack(2, Faults::default()).await;
    let orders = gen_orders("RS", 50);
    let first: Vec<_> = orders
        .iter()
        .map(|o| crate::broker::Outgoing::keyed(o.no.clone(), o.events[0].clone()))
        .chain(
            orders
                .iter()
                .map(|o| crate::broker::Outgoing::keyed(o.no.clone(), o.events[1].clone())),
        )
        .collect();
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let d1 = broker.produce_batch(&names.input, first).await;
    let app = RunningApp::start(&config).await;
    let e1 = ends(&d1);
    assert!(
        eventually(Duration::from_secs(60), || async {
            all_committed(&broker, &names, &e1, 2).await
        })
        .await
    );
    app.stop().await.unwrap();
    // Only the payment comes after the restart: its event patches status and payment fields only.
    let d2 = broker
        .produce_batch(
            &names.input,
            orders
                .iter()
                .map(|o| crate::broker::Outgoing::keyed(o.no.clone(), o.events[2].clone()))
                .collect(),
        )
        .await;
    let app = RunningApp::start(&config).await;
    let e2 = ends(&[d1, d2].concat());
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &e2,
        2,
        Duration::from_secs(60),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    for o in &orders {
        let last = sandbox.posts(&o.no).pop().unwrap().body.unwrap();
        assert_eq!(last["status"], "PAY_SUCCESS");
        assert_eq!(
            last["dish_list"].as_array().unwrap().len(),
            3,
            "dishes from before the restart"
        );
    }
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// SIGTERM: the `run` process finishes what it received, commits, leaves the group and exits 0
/// within the shutdown deadline; committed offsets cover every acknowledged post.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_commits_and_exits_0() {
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        delivered,
        ..
    } = Scenario::new("TERM", 300)
        .faults(Faults {
            latency_ms: 20,
            ..Faults::default()
        })
        .produce()
        .await;
    let mut app = ChildApp::spawn(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ));
    let busy = eventually(Duration::from_secs(30), || async {
        sandbox.stats().accepted >= 50
    })
    .await;
    assert!(busy, "service started posting: {}", app.log_text());
    let t0 = std::time::Instant::now();
    app.sigterm();
    let status = app
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exited within the shutdown deadline");
    assert_eq!(status.code(), Some(0), "{}", app.log_text());
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        t0.elapsed()
    );
    let committed = broker.committed(&names.group, &names.input, 2).await;
    let mut covered = 0;
    for ((p, o), is_covered) in coverage(&delivered, &orders, &sandbox) {
        if is_covered {
            covered += 1;
            let c = committed[&p].unwrap_or(0);
            assert!(
                o < c,
                "acknowledged event at {p}/{o} not covered by committed offset {c}"
            );
        }
    }
    assert!(covered >= 50, "{covered} acknowledged events checked");
    assert!(app.log_text().contains("stopped"), "logged its stop");
    sandbox.shutdown().await;
}

/// SIGKILL at random moments, three times, over 1,000 orders: after the restarts every order
/// reached the sandbox with its statuses in order and the expected final body, and the only
/// dead letters are the deliberately bad events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn survives_sigkill_without_loss() {
    use rand::Rng;
    let (broker, names, sandbox) = tansu_stack(
        4,
        Faults {
            latency_ms: 5,
            jitter_ms: 10,
            ..Faults::default()
        },
    )
    .await;
    let orders = gen_orders("KILL", 1000);
    let mut records = interleave(&orders, 20);
    let bad: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("{{\"not\": \"an event {i}\"").into_bytes())
        .collect();
    for (i, b) in bad.iter().enumerate() {
        records.insert(
            records.len() / 2 + i * 97,
            crate::broker::Outgoing::keyed(format!("BAD{i}"), b.clone()),
        );
    }
    let delivered = broker.produce_batch(&names.input, records).await;
    let ends = ends(&delivered);
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let mut kills = 0;
    let mut last_accepted = 0;
    while kills < 3 {
        let app = ChildApp::spawn(&config);
        // Let it make progress, then kill it at a random moment.
        let target = last_accepted + rand::thread_rng().gen_range(150..450);
        let progressed = eventually(Duration::from_secs(60), || async {
            sandbox.stats().accepted >= target
        })
        .await;
        assert!(
            progressed,
            "no progress before kill {kills}: {}",
            app.log_text()
        );
        tokio::time::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..300))).await;
        app.sigkill();
        kills += 1;
        last_accepted = sandbox.stats().accepted;
    }
    let app = ChildApp::spawn(&config);
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        4,
        Duration::from_secs(180),
    )
    .await;
    assert!(
        done,
        "after {kills} kills: {:?}\n{}",
        check_delivered(&sandbox, &orders),
        app.log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(app);
    let dlq = broker.read_all(&names.dlq).await;
    assert!(dlq.len() >= bad.len(), "every bad event is dead-lettered");
    for r in &dlq {
        assert!(
            bad.iter().any(|b| r.value.as_deref() == Some(b.as_slice())),
            "unexpected dead letter: {:?}",
            r.headers
        );
    }
    for b in &bad {
        assert!(dlq.iter().any(|r| r.value.as_deref() == Some(b.as_slice())));
    }
    sandbox.shutdown().await;
}

/// A changelog that is not co-partitioned with the input stops start-up with an error that names
/// the key and both partition counts; a missing one is created, compacted, co-partitioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_checks_the_changelog_is_co_partitioned() {
    use catering_sync::app::AppError;
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    broker.create_topic(&names.changelog, 3).await;
    let sandbox = sandbox_with(Faults::default()).await;
    let config = catering_sync::config::Config::from_toml(
        &config_text(&broker.bootstrap(), &names, &sandbox.base_url(), ""),
        std::iter::empty(),
    )
    .unwrap();
    let result = catering_sync::app::run(config, std::future::pending(), |_| {}).await;
    match result {
        Err(e @ AppError::Config(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("co-partitioned")
                    && text.contains("3 partitions")
                    && text.contains("has 2"),
                "{text}"
            );
            assert_eq!(e.exit_code(), 2);
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    // A missing changelog is created with the input's partition count.
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    assert_eq!(broker.partition_count(&names.changelog).await, Some(2));
    assert!(broker.partition_count(&names.dlq).await.is_some());
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// Orders acknowledged as paid are tombstoned in the changelog after the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn final_orders_are_tombstoned_after_the_retention() {
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        ..
    } = Scenario::new("TS", 5).partitions(1).produce().await;
    let extra = "[state]\nfinal_retention_secs = 1\nsweep_interval_secs = 1";
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        extra,
    ))
    .await;
    let tombstoned = eventually(Duration::from_secs(60), || async {
        let records = broker.read_all(&names.changelog).await;
        orders.iter().all(|o| {
            records
                .iter()
                .rev()
                .find(|r| r.key.as_deref() == Some(o.no.as_bytes()))
                .is_some_and(|r| r.value.is_none())
        })
    })
    .await;
    assert!(tombstoned, "every paid order ends in a tombstone");
    check_delivered(&sandbox, &orders).unwrap();
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// A tiny partition buffer with a slow WeChat Pay: partitions are paused and resumed over and
/// over, and everything still arrives in order and is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backpressure_pauses_and_resumes_without_loss() {
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        ends,
        ..
    } = Scenario::new("BP", 150)
        .faults(Faults {
            latency_ms: 15,
            ..Faults::default()
        })
        .dup_every(5)
        .produce()
        .await;
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[pipeline]\npartition_buffer = 4\nmax_in_flight = 3",
    );
    let app = RunningApp::start(&config).await;
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        2,
        Duration::from_secs(120),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    app.stop().await.unwrap();
    assert!(broker.read_all(&names.dlq).await.is_empty());
    sandbox.shutdown().await;
}
