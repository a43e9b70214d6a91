//! Rebalances and broker faults: several `run` processes in one group, members added and
//! killed mid-run, against tansu (range assignor, the one it handles) and against MockCluster
//! (cooperative-sticky; a broker down and up).

use std::time::Duration;

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, MockBroker};
use crate::harness::eventually;
use crate::stack::*;

/// Three members: A and B start, C joins mid-run, B is SIGKILLed mid-run; orders keep arriving
/// in three waves. Every order reaches the sandbox in order with the expected final body, every
/// offset is committed, and nothing is dead-lettered.
async fn three_members_one_added_one_killed<B: Broker>(
    broker: &B,
    config: String,
    names: &Names,
    sandbox: &catering_sync::sandbox::SandboxHandle,
    partitions: i32,
) {
    let orders = gen_orders(&format!("RB{}", &names.group[6..12]), 600);
    let waves: Vec<&[GenOrder]> = orders.chunks(200).collect();
    let mut delivered = broker
        .produce_batch(&names.input, interleave(waves[0], 0))
        .await;
    let a = ChildApp::spawn(&config);
    let b = ChildApp::spawn(&config);
    let progressed = |n: u64| async move {
        eventually(Duration::from_secs(90), || async {
            sandbox.stats().accepted >= n
        })
        .await
    };
    assert!(
        progressed(100).await,
        "A and B made progress: {}",
        a.log_text()
    );
    let c = ChildApp::spawn(&config);
    let joined = eventually(Duration::from_secs(60), || async {
        c.log_text().contains("partitions assigned")
    })
    .await;
    assert!(joined, "C joined: {}", c.log_text());
    let before = sandbox.stats().accepted;
    delivered.extend(
        broker
            .produce_batch(&names.input, interleave(waves[1], 0))
            .await,
    );
    assert!(
        progressed(before + 100).await,
        "progress after C joined: {:?}\nA: {}\nB: {}\nC: {}",
        sandbox.stats(),
        tail(&a),
        tail(&b),
        tail(&c)
    );
    b.sigkill();
    delivered.extend(
        broker
            .produce_batch(&names.input, interleave(waves[2], 0))
            .await,
    );
    let ends = ends(&delivered);
    let done = delivered_and_committed(
        broker,
        names,
        sandbox,
        &orders,
        &ends,
        partitions,
        Duration::from_secs(180),
    )
    .await;
    assert!(
        done,
        "{:?}\nA: {}\nC: {}",
        check_delivered(sandbox, &orders),
        tail(&a),
        tail(&c)
    );
    drop((a, c));
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "no dead letters"
    );
}

/// The mock broker does not implement CreateTopics: create the three topics on the cluster.
fn mock_topics(broker: &MockBroker, names: &Names, partitions: i32) {
    for topic in [
        names.input.clone(),
        names.changelog.clone(),
        names.dlq.clone(),
    ] {
        broker
            .with_cluster(move |c| c.create_topic(&topic, partitions, 1))
            .expect("mock topic");
    }
}

fn tail(app: &ChildApp) -> String {
    let text = app.log_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_with_a_member_added_and_one_killed_on_tansu_range() {
    let (broker, names, sandbox) = tansu_stack(
        6,
        Faults {
            latency_ms: 10,
            jitter_ms: 20,
            ..Faults::default()
        },
    )
    .await;
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    three_members_one_added_one_killed(&broker, config, &names, &sandbox, 6).await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_with_a_member_added_and_one_killed_on_mock_cluster_cooperative_sticky() {
    let broker = MockBroker::start(3);
    let names = Names::fresh();
    mock_topics(&broker, &names, 6);
    let sandbox = sandbox_with(Faults {
        latency_ms: 10,
        jitter_ms: 20,
        ..Faults::default()
    })
    .await;
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[kafka]\nassignor = \"cooperative-sticky\"",
    );
    three_members_one_added_one_killed(&broker, config, &names, &sandbox, 6).await;
    sandbox.shutdown().await;
}

/// A broker of a three-broker MockCluster goes down mid-run and comes back: nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_down_and_up_mid_run_loses_nothing() {
    let broker = MockBroker::start(3);
    let names = Names::fresh();
    mock_topics(&broker, &names, 3);
    let sandbox = sandbox_with(Faults {
        latency_ms: 5,
        ..Faults::default()
    })
    .await;
    let orders = gen_orders("BD", 300);
    let (first, second) = orders.split_at(150);
    let mut delivered = broker
        .produce_batch(&names.input, interleave(first, 0))
        .await;
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            sandbox.stats().accepted >= 50
        })
        .await,
        "progress"
    );
    broker.broker_down(2);
    tokio::time::sleep(Duration::from_secs(3)).await; // the fault lasts a while: a duration, not a condition
    broker.broker_up(2);
    delivered.extend(
        broker
            .produce_batch(&names.input, interleave(second, 0))
            .await,
    );
    let ends = ends(&delivered);
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        3,
        Duration::from_secs(120),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    app.stop().await.unwrap();
    assert!(broker.read_all(&names.dlq).await.is_empty());
    sandbox.shutdown().await;
}
