//! The breaker, the send-rate limiter and deployment faults under the faults that broke them:
//! a lone always-failing body at low traffic, an outage with a rebalance in the middle, a
//! brownout, a 429 storm, and deployment-wide rejections (403 `NO_AUTH`, 404, header-level 400).

use std::time::Duration;

use catering_sync::sandbox::{DeploymentFault, Faults, SandboxHandle};

use crate::broker::{Broker, TestBroker};
use crate::harness::eventually;
use crate::stack::*;

fn config(broker: &TestBroker, names: &Names, sandbox: &SandboxHandle) -> String {
    config_text(&broker.bootstrap(), names, &sandbox.base_url(), "")
}

async fn metric(app: &RunningApp, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn dead_letters(broker: &TestBroker, names: &Names) -> Vec<String> {
    broker
        .read_all(&names.dlq)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

fn status_count(sandbox: &SandboxHandle, status: u16) -> u64 {
    sandbox
        .stats()
        .responses_by_status
        .get(&status)
        .copied()
        .unwrap_or(0)
}

/// One order whose every post gets a 500 while WeChat Pay answers everything else: the breaker
/// must not keep the partition paused for its sake. Events produced after it, one at a time, are
/// all delivered; none of them is dead-lettered. (Before: the lone body opened the breaker,
/// was the only thing left to probe it, never succeeded and never counted toward its budget —
/// the partition stayed paused for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lone_failing_body_at_low_traffic_does_not_stop_the_others() {
    let lone = gen_orders("LONE", 1);
    let faults = Faults {
        fail_orders: vec![lone[0].no.clone()],
        ..Faults::default()
    };
    let (broker, names, sandbox) = tansu_stack(1, faults).await;
    broker
        .produce_batch(&names.input, interleave(&lone[..1], 0)[..1].to_vec())
        .await;
    let app = RunningApp::start(&config(&broker, &names, &sandbox)).await;
    let opened = eventually(Duration::from_secs(30), || async {
        status_count(&sandbox, 500) >= 3
    })
    .await;
    assert!(opened, "the lone body fails: {:?}", sandbox.stats());
    let others = gen_orders("LOW", 12);
    for o in &others {
        broker
            .produce_batch(&names.input, interleave(std::slice::from_ref(o), 0))
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await; // low traffic, not a condition
    }
    let done = eventually(Duration::from_secs(90), || async {
        check_delivered(&sandbox, &others).is_ok()
    })
    .await;
    assert!(
        done,
        "the other orders are delivered: {:?}; stats {:?}",
        check_delivered(&sandbox, &others),
        sandbox.stats()
    );
    let dead = dead_letters(&broker, &names).await;
    assert!(
        dead.iter().all(|k| *k == lone[0].no),
        "only the failing body may be dead-lettered: {dead:?}"
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// An outage, and a second member joining in the middle of it: the rebalance cancels every
/// waiting delivery and the partitions come back paused before anything is fetched. Nothing is
/// left to probe but the prober: once WeChat Pay is back, everything is delivered and
/// committed, nothing dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_with_a_rebalance_in_the_middle_recovers_without_dead_letters() {
    let down = Faults {
        rate_503: 1.0,
        ..Faults::default()
    };
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        ends,
        ..
    } = Scenario::new("ORB", 60).faults(down).produce().await;
    let config = config(&broker, &names, &sandbox);
    let a = RunningApp::start(&config).await;
    let open = eventually(Duration::from_secs(30), || async {
        metric(&a, "catering_sync_circuit_breaker_state").await == Some(1.0)
            || metric(&a, "catering_sync_circuit_breaker_state").await == Some(2.0)
    })
    .await;
    assert!(open, "A's breaker opens: {:?}", sandbox.stats());
    let b = RunningApp::start(&config).await;
    let rebalanced = eventually(Duration::from_secs(60), || async {
        metric(&a, "catering_sync_assigned_partitions").await == Some(1.0)
            && metric(&b, "catering_sync_assigned_partitions").await == Some(1.0)
    })
    .await;
    assert!(rebalanced, "one partition each");
    sandbox.set_faults(Faults::default());
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
    assert!(
        done,
        "caught up after the outage: {:?}; {:?}; A breaker {:?}, B breaker {:?}",
        check_delivered(&sandbox, &orders),
        sandbox.stats(),
        metric(&a, "catering_sync_circuit_breaker_state").await,
        metric(&b, "catering_sync_circuit_breaker_state").await,
    );
    assert!(dead_letters(&broker, &names).await.is_empty());
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// 80 % of posts answered 500 for a while, with a small retry budget (4 attempts): the breaker
/// flaps, but no failure counts toward a budget while most requests fail, so nothing is
/// dead-lettered and everything is delivered once the brownout ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_brownout_dead_letters_nothing_and_catches_up() {
    let brownout = Faults {
        rate_500: 0.8,
        ..Faults::default()
    };
    let Produced {
        broker,
        names,
        sandbox,
        orders,
        ends,
        ..
    } = Scenario::new("BRN", 200).faults(brownout).produce().await;
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[retry]\nmax_attempts = 4",
    );
    let app = RunningApp::start(&config).await;
    // Long enough for many flaps of the breaker: until 1,500 answers were 500s (or the first
    // dead letter).
    let browned = eventually(Duration::from_secs(180), || async {
        status_count(&sandbox, 500) >= 1_500 || !dead_letters(&broker, &names).await.is_empty()
    })
    .await;
    let during = dead_letters(&broker, &names).await;
    assert!(
        during.is_empty(),
        "a brownout dead-letters nothing: {} dead letters after {:?}",
        during.len(),
        sandbox.stats()
    );
    assert!(browned, "the brownout is hit: {:?}", sandbox.stats());
    sandbox.set_faults(Faults::default());
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
    assert!(done, "caught up: {:?}", sandbox.stats());
    assert!(
        dead_letters(&broker, &names).await.is_empty(),
        "a brownout dead-letters nothing"
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// A storm of 429s while hundreds of posts are in flight: the send rate is halved once per
/// interval, not once per answer (before: 256 concurrent 429s took it to the 1/s floor), nothing
/// is dead-lettered, everything is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_storm_halves_the_rate_once_per_interval_and_dead_letters_nothing() {
    let slow = Faults {
        latency_ms: 200,
        ..Faults::default()
    };
    let (broker, names, sandbox) = tansu_stack(4, slow.clone()).await;
    let orders = gen_orders("TMR", 1_000);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 0))
        .await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config(&broker, &names, &sandbox)).await;
    let busy = eventually(Duration::from_secs(60), || async {
        metric(&app, "catering_sync_posts_in_flight")
            .await
            .is_some_and(|n| n >= 200.0)
    })
    .await;
    assert!(busy, "hundreds in flight");
    sandbox.set_faults(Faults {
        rate_429: 1.0,
        ..slow.clone()
    });
    let stormed = eventually(Duration::from_secs(30), || async {
        status_count(&sandbox, 429) >= 400
    })
    .await;
    assert!(stormed, "the storm is hit: {:?}", sandbox.stats());
    sandbox.set_faults(Faults::default());
    let rate = metric(&app, "catering_sync_send_rate_limit").await.unwrap();
    assert!(
        rate >= 5.0,
        "{} 429s lowered the send rate to {rate}/s",
        status_count(&sandbox, 429)
    );
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
    assert!(done, "caught up: {:?}", sandbox.stats());
    assert!(dead_letters(&broker, &names).await.is_empty());
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

/// A deployment-wide rejection for everything, then fixed: not ready while it lasts, nothing
/// dead-lettered, only one probe at a time (not every buffered order re-sending), and every
/// order delivered once it is fixed. (Before: 403 `NO_AUTH` and 404 dead-lettered every event.)
async fn deployment_fault_then_fixed(fault: DeploymentFault, status: u16, tag: &str) {
    let (broker, names, sandbox) = tansu_stack(
        2,
        Faults {
            deployment_fault: Some(fault),
            ..Faults::default()
        },
    )
    .await;
    let orders = gen_orders(tag, 40);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 0))
        .await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config(&broker, &names, &sandbox)).await;
    let not_ready = eventually(Duration::from_secs(30), || async {
        status_count(&sandbox, status) >= 1 && app.readyz().await == 503
    })
    .await;
    assert!(
        not_ready,
        "not ready during a deployment fault: {:?}",
        sandbox.stats()
    );
    // Probing, not flooding: over the next 20 probe intervals (500 ms each), a handful of
    // requests, not one per buffered order per interval.
    let before = sandbox.stats().requests;
    let probed = eventually(Duration::from_secs(30), || async {
        metric(&app, "catering_sync_config_fault").await == Some(1.0)
            && sandbox.stats().requests >= before + 3
    })
    .await;
    assert!(probed, "it keeps probing: {:?}", sandbox.stats());
    let window = tokio::time::Instant::now();
    let start = sandbox.stats().requests;
    tokio::time::sleep(Duration::from_secs(5)).await; // a measuring window, not a condition
    let sent = sandbox.stats().requests - start;
    let intervals = window.elapsed().as_millis() as u64 / 500 + 1;
    assert!(
        sent <= 2 * intervals,
        "{sent} requests in {intervals} probe intervals: every waiting order re-sends"
    );
    assert!(
        dead_letters(&broker, &names).await.is_empty(),
        "never dead-letter"
    );
    sandbox.set_faults(Faults::default());
    let done = eventually(Duration::from_secs(60), || async {
        check_delivered(&sandbox, &orders).is_ok()
            && all_committed(&broker, &names, &ends, 2).await
            && app.readyz().await == 200
    })
    .await;
    assert!(done, "recovered: {:?}", sandbox.stats());
    assert!(
        dead_letters(&broker, &names).await.is_empty(),
        "never dead-letter"
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_403_no_auth_for_everything_dead_letters_nothing_and_recovers() {
    deployment_fault_then_fixed(DeploymentFault::NoAuth, 403, "NOAUTH").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_404_wrong_path_dead_letters_nothing_and_recovers() {
    deployment_fault_then_fixed(DeploymentFault::NotFound, 404, "NOTFOUND").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_header_level_400_dead_letters_nothing_and_recovers() {
    deployment_fault_then_fixed(DeploymentFault::InvalidRequest, 400, "BADHDR").await;
}
