//! The group coordinator down for longer than the session timeout (MockCluster: the coordinator
//! is a broker of its own, the partitions' leader stays up). Before, the poll thread committed
//! synchronously once per interval and each commit waited for the coordinator: no pause/resume,
//! no rebalance handling, and a `/healthz` that can flip. Now commits are asynchronous (one in
//! flight, answered through the commit callback): the poll loop keeps iterating through the
//! outage, `/healthz` stays 200, nothing is lost, and commits resume when the coordinator is back.

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCoordinator;

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, MockBroker};
use crate::stack::*;

/// Longer than the session timeout of the test configuration (6 s), several commit intervals.
const OUTAGE: Duration = Duration::from_secs(20);

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_coordinator_down_past_the_session_timeout_never_stalls_the_poll_loop() {
    let broker = MockBroker::start(3);
    let names = Names::fresh();
    for topic in [&names.input, &names.changelog, &names.dlq] {
        broker.create_topic(topic, 2).await;
        for p in 0..2 {
            broker.partition_leader(topic, p, 1);
        }
    }
    let group = names.group.clone();
    broker
        .with_cluster(move |c| c.coordinator(MockCoordinator::Group(group), 3))
        .expect("coordinator on broker 3");
    let sandbox = sandbox_with(Faults::default()).await;
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let app = RunningApp::start(&config).await;
    let base = format!("http://{}", app.http_addr);

    let first = gen_orders("CDA", 20);
    let mut delivered = broker
        .produce_batch(&names.input, interleave(&first, 0))
        .await;
    let caught_up = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &first,
        &ends(&delivered),
        2,
        Duration::from_secs(90),
    )
    .await;
    assert!(caught_up, "before the outage: {:?}", sandbox.stats());
    // The periodic commits are answered (their answers reach the commit callback), not given up.
    let before = get(&format!("{base}/metrics"))
        .await
        .map(|(_, m)| m)
        .unwrap_or_default();
    let answered = value(&before, "catering_sync_commit_duration_seconds_count").unwrap_or(0.0);
    let failed = sum(&before, "catering_sync_commit_failures_total{");
    assert!(
        answered > 0.0 && failed == 0.0,
        "periodic commits answered before the outage: {answered} answered, {failed} failed"
    );

    broker.broker_down(3);
    let second = gen_orders("CDB", 20);
    delivered.extend(
        broker
            .produce_batch(&names.input, interleave(&second, 0))
            .await,
    );
    // Sample the ops endpoints through the outage: every /healthz answer, and how far behind
    // the poll loop's last iteration is at each sample.
    let started = Instant::now();
    let mut healthz = Vec::new();
    let mut worst_poll_age = 0.0f64;
    let mut iterations = std::collections::BTreeSet::new();
    while started.elapsed() < OUTAGE {
        let sampled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        healthz.push(get(&format!("{base}/healthz")).await.map(|(s, _)| s));
        if let Some(last) = get(&format!("{base}/metrics"))
            .await
            .and_then(|(_, m)| value(&m, "catering_sync_last_poll_timestamp_seconds"))
        {
            worst_poll_age = worst_poll_age.max(sampled - last);
            iterations.insert(last as i64);
        }
        tokio::time::sleep(Duration::from_millis(250)).await; // a sampling cadence, not a condition
    }
    broker.broker_up(3);

    let everything: Vec<GenOrder> = first.iter().chain(&second).cloned().collect();
    let resumed = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &everything,
        &ends(&delivered),
        2,
        Duration::from_secs(120),
    )
    .await;
    let metrics = get(&format!("{base}/metrics"))
        .await
        .map(|(_, m)| m)
        .unwrap_or_default();
    let failures = sum(&metrics, "catering_sync_commit_failures_total{");
    let report = format!(
        "healthz {:?}; poll loop at most {worst_poll_age:.1} s behind, in {} distinct seconds of {} s; commit failures {failures}; {:?}",
        {
            let mut counts = std::collections::BTreeMap::new();
            for h in &healthz {
                *counts.entry(*h).or_insert(0) += 1;
            }
            counts
        },
        iterations.len(),
        OUTAGE.as_secs(),
        sandbox.stats()
    );
    eprintln!("coordinator outage: {report}");
    assert!(
        resumed,
        "every order delivered and committed after the outage: {:?}; {report}",
        check_delivered(&sandbox, &everything)
    );
    assert!(
        healthz.iter().all(|h| *h == Some(200)),
        "/healthz stays 200 through the outage: {report}"
    );
    // The loop iterates every 50 ms when idle; a commit waiting for the coordinator would hold
    // it for seconds. Half the session timeout is far above one iteration and far below a
    // blocked commit.
    assert!(
        worst_poll_age < 3.0,
        "the poll loop keeps iterating while the coordinator is down: {report}"
    );
    let dead = broker.read_all(&names.dlq).await;
    assert!(dead.is_empty(), "no dead letters: {} of them", dead.len());
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}
