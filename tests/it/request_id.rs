//! WeChat Pay's `Request-ID` reaches the operator wherever an answer is reported (issue 13, 6):
//! here, the dead letter of a body whose retries ran out keeps the last answer's id, as a
//! rejection's does.

use std::time::Duration;

use catering_sync::dead_letter::{header, header_value};
use catering_sync::sandbox::Faults;

use crate::broker::Broker;
use crate::harness::eventually;
use crate::stack::*;

/// One order whose every post gets a 500 among 30 that succeed: its retries run out
/// (`retries_exhausted`), and its dead letter names the HTTP status and the last `Request-ID`.
/// (Before: only a `rejected` dead letter kept the id.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retries_exhausted_dead_letter_keeps_the_last_request_id() {
    let failing = "RID000000".to_string();
    let Running {
        broker,
        names,
        sandbox,
        app,
        ..
    } = Scenario::new("RID", 30)
        .faults(Faults {
            fail_orders: vec![failing.clone()],
            ..Faults::default()
        })
        .config("[retry]\nmax_attempts = 4\nbreaker_threshold = 3")
        .start()
        .await;
    let dead = eventually(Duration::from_secs(60), || async {
        !broker.read_all(&names.dlq).await.is_empty()
    })
    .await;
    assert!(
        dead,
        "the failing order is dead-lettered: {:?}",
        sandbox.stats()
    );
    let letters = broker.read_all(&names.dlq).await;
    let letter = &letters[0];
    assert_eq!(letter.key.as_deref(), Some(failing.as_bytes()));
    let h = &letter.headers;
    assert_eq!(header_value(h, header::REASON), Some("retries_exhausted"));
    assert_eq!(header_value(h, header::HTTP_STATUS), Some("500"));
    let id = header_value(h, header::REQUEST_ID).expect("the last answer's Request-ID");
    assert!(
        id.starts_with("08") && id.len() > 16,
        "the sandbox's Request-ID format: {id}"
    );
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}
