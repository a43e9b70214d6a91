//! The changelog topic refused to the pod (its ACL missing: every Produce answered
//! `TOPIC_AUTHORIZATION_FAILED`, injected on MockCluster; tansu accepts writes to a deleted
//! topic, so it cannot show this): its writes — the fence at assignment first — fail for good. The pod must say so — `/readyz` 503 — and, past
//! `pipeline.produce_fault_exit_ms`, exit non-zero so the platform restarts it, never retry
//! silently with `/readyz` green. (Before: it retried every 5 s for ever, ready.)

use std::time::Duration;

use rdkafka::types::RDKafkaRespErr;

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, MockBroker};
use crate::harness::eventually;
use crate::stack::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn readyz(port: u16) -> u16 {
    match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changelog_refused_for_good_makes_the_pod_not_ready_then_exit_non_zero() {
    let broker = MockBroker::start(1);
    let names = Names::fresh();
    for topic in [
        names.input.clone(),
        names.changelog.clone(),
        names.dlq.clone(),
    ] {
        broker
            .with_cluster(move |c| c.create_topic(&topic, 1, 1))
            .expect("mock topic");
    }
    let sandbox = sandbox_with(Faults::default()).await;
    let port = free_port();
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        &format!("[pipeline]\nproduce_fault_exit_ms = 5000\n[http]\nlisten = \"127.0.0.1:{port}\""),
    );
    let first = gen_orders("PFA", 5);
    broker
        .produce_batch(&names.input, interleave(&first, 0))
        .await;
    broker.with_cluster(|c| {
        c.request_errors(
            rdkafka::types::RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 100_000],
        )
    });
    let mut app = ChildApp::spawn(&config);
    let not_ready = eventually(Duration::from_secs(60), || async {
        readyz(port).await == 503 && app.log_text().contains("permanent\":true")
    })
    .await;
    let failing = eventually(Duration::from_secs(60), || async {
        app.log_text().contains("write to Kafka failed")
    })
    .await;
    assert!(failing, "its writes fail: {}", app.log_text());
    let tail: String = app
        .log_text()
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(not_ready, "not ready once the changelog is refused: {tail}");
    let status = app.wait_exit(Duration::from_secs(60)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "exits non-zero past the bound: {status:?}: {}",
        app.log_text()
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    sandbox.shutdown().await;
}
