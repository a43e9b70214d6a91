//! Every fault the sandbox injects produces the documented client disposition (SPEC §7).

use std::time::Duration;

use catering_sync::sandbox::{Faults, Outage, OutageKind};
use catering_sync::wechatpay::{Disposition, Transient, TransientCause, VerifyError};
use serde_json::{json, Value};

use crate::harness::{bytes, client, client_for, eventually, sandbox, sandbox_with, sp_body};

fn transient(d: &Disposition) -> &Transient {
    match d {
        Disposition::Transient(t) => t,
        other => panic!("expected transient, got {other:?}"),
    }
}

#[tokio::test]
async fn each_fault_kind_maps_to_its_disposition() {
    let sb = sandbox().await;
    let c = client_for(&sb, Duration::from_millis(400));
    let body = bytes(&sp_body("F-1", "CREATE_DEAL"));
    type Check = Box<dyn Fn(&Disposition)>;
    let cases: Vec<(Faults, Check)> = vec![
        (
            Faults {
                rate_500: 1.0,
                ..Faults::default()
            },
            Box::new(|d| assert_eq!(transient(d).cause, TransientCause::Server(500))),
        ),
        (
            Faults {
                rate_503: 1.0,
                ..Faults::default()
            },
            Box::new(|d| {
                let t = transient(d);
                assert_eq!(t.cause, TransientCause::Server(503));
                assert_eq!(t.error.as_ref().unwrap().code, "SERVICE_UNAVAILABLE");
            }),
        ),
        (
            Faults {
                rate_429: 1.0,
                retry_after_secs: 7,
                ..Faults::default()
            },
            Box::new(|d| {
                let t = transient(d);
                assert_eq!(t.cause, TransientCause::Throttled);
                assert_eq!(t.retry_after, Some(Duration::from_secs(7)));
                assert_eq!(t.error.as_ref().unwrap().code, "FREQUENCY_LIMITED");
            }),
        ),
        (
            Faults {
                rate_hang: 1.0,
                hang_ms: 3_000,
                ..Faults::default()
            },
            Box::new(|d| assert_eq!(transient(d).cause, TransientCause::Timeout)),
        ),
        (
            Faults {
                rate_drop: 1.0,
                ..Faults::default()
            },
            Box::new(|d| assert_eq!(transient(d).cause, TransientCause::Connection)),
        ),
        (
            Faults {
                rate_bad_signature: 1.0,
                ..Faults::default()
            },
            Box::new(|d| {
                assert_eq!(
                    transient(d).cause,
                    TransientCause::Unverified(VerifyError::Mismatch)
                )
            }),
        ),
        (
            Faults {
                rate_signtest: 1.0,
                ..Faults::default()
            },
            Box::new(|d| {
                assert_eq!(
                    transient(d).cause,
                    TransientCause::Unverified(VerifyError::SignTestProbe)
                )
            }),
        ),
        (
            Faults {
                unauthorized: true,
                ..Faults::default()
            },
            Box::new(|d| match d {
                Disposition::ConfigFault(r) => assert_eq!(
                    (r.status, r.error.as_ref().unwrap().code.as_str()),
                    (401, "SIGN_ERROR")
                ),
                other => panic!("expected config fault, got {other:?}"),
            }),
        ),
        (
            Faults {
                outages: vec![Outage {
                    start_ms: 0,
                    duration_ms: 60_000,
                    kind: OutageKind::Unavailable,
                }],
                ..Faults::default()
            },
            Box::new(|d| assert_eq!(transient(d).cause, TransientCause::Server(503))),
        ),
        (
            Faults {
                outages: vec![Outage {
                    start_ms: 0,
                    duration_ms: 60_000,
                    kind: OutageKind::Drop,
                }],
                ..Faults::default()
            },
            Box::new(|d| assert_eq!(transient(d).cause, TransientCause::Connection)),
        ),
    ];
    for (faults, check) in cases {
        sb.set_faults(faults.clone());
        let attempt = c.sync_status(body.clone()).await;
        check(&attempt.disposition);
    }
    let stats = sb.stats();
    for kind in [
        "500",
        "503",
        "429",
        "hang",
        "drop",
        "bad_signature",
        "signtest",
        "unauthorized",
    ] {
        assert!(
            stats.faults.get(kind).copied().unwrap_or(0) >= 1,
            "fault {kind} counted: {:?}",
            stats.faults
        );
    }
    sb.set_faults(Faults::default());
    assert_eq!(
        c.sync_status(body).await.disposition,
        Disposition::Delivered
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn an_outage_window_ends_and_delivery_resumes() {
    let faults = Faults {
        outages: vec![Outage {
            start_ms: 0,
            duration_ms: 400,
            kind: OutageKind::Unavailable,
        }],
        ..Faults::default()
    };
    let sb = sandbox_with(faults).await;
    let c = client(&sb);
    let body = bytes(&sp_body("O-1", "CREATE_DEAL"));
    assert!(matches!(
        c.sync_status(body.clone()).await.disposition,
        Disposition::Transient(_)
    ));
    let delivered = eventually(Duration::from_secs(10), || {
        let c = c.clone();
        let body = body.clone();
        async move { c.sync_status(body).await.disposition == Disposition::Delivered }
    })
    .await;
    assert!(delivered, "the outage window closes");
    assert!(
        sb.stats()
            .responses_by_status
            .get(&503)
            .copied()
            .unwrap_or(0)
            >= 1
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn latency_and_jitter_delay_but_do_not_fail() {
    let sb = sandbox_with(Faults {
        latency_ms: 150,
        jitter_ms: 50,
        ..Faults::default()
    })
    .await;
    let attempt = client(&sb)
        .sync_status(bytes(&sp_body("L-1", "CREATE_DEAL")))
        .await;
    assert_eq!(attempt.disposition, Disposition::Delivered);
    assert!(
        attempt.elapsed >= Duration::from_millis(150),
        "{:?}",
        attempt.elapsed
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_change_at_run_time_over_http() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let url = format!("{}/__sandbox/faults", sb.base_url());
    let set = http
        .post(&url)
        .json(&json!({"rate_500": 1.0, "outages": [{"start_ms": 3600000, "duration_ms": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let shown: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["rate_500"], 1.0);
    assert_eq!(shown["outages"][0]["kind"], "unavailable");
    let attempt = client(&sb)
        .sync_status(bytes(&sp_body("RT-1", "CREATE_DEAL")))
        .await;
    assert_eq!(
        transient(&attempt.disposition).cause,
        TransientCause::Server(500)
    );
    // Invalid fault settings are refused and leave the faults as they were.
    for bad in [json!({"rate_500": 2.0}), json!({"rate_five_hundred": 1.0})] {
        let r = http.post(&url).json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let shown: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["rate_500"], 1.0);
    sb.shutdown().await;
}

#[tokio::test]
async fn benchmark_mode_reuses_one_signature_per_second_and_still_verifies() {
    let mut config =
        catering_sync::sandbox::SandboxConfig::from_generated(crate::harness::keys()).unwrap();
    config.bench_mode = true;
    config.verify_every = 4;
    config.record_bodies = false;
    let sb = catering_sync::sandbox::SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let c = client(&sb);
    for i in 0..8 {
        let attempt = c
            .sync_status(bytes(&sp_body(&format!("B-{i}"), "CREATE_DEAL")))
            .await;
        assert_eq!(attempt.disposition, Disposition::Delivered);
    }
    let posts = sb.posts("B-0");
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body.is_none(), "bodies are not kept");
    assert_eq!(posts[0].status.as_deref(), Some("CREATE_DEAL"));
    sb.shutdown().await;
}
