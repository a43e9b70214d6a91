//! The pipeline against a real broker process (tansu) and the sandbox over HTTP.

use std::time::Duration;

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, TestBroker};
use crate::harness::eventually;
use crate::stack::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn end_to_end_500_orders_reach_the_sandbox_in_order_and_are_committed() {
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 4).await;
    let sandbox = sandbox_with(Faults::default()).await;
    let orders = gen_orders("E2E", 500);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 10))
        .await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ))
    .await;
    let done = eventually(Duration::from_secs(120), || async {
        check_delivered(&sandbox, &orders).is_ok() && all_committed(&broker, &names, &ends, 4).await
    })
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
