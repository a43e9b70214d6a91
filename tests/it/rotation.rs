//! Keys rotated without a restart (issue 13, 3): the configuration and key files change under a
//! running service, as a Kubernetes secret update changes them, and it reloads them whole.

use std::time::Duration;

use catering_sync::config::Config;
use catering_sync::sandbox::{merchant_public_key, MerchantIdentity, SandboxConfig, SandboxHandle};

use crate::broker::{Broker, TestBroker};
use crate::harness::{eventually, keys, other_keys};
use crate::stack::*;

/// A merchant-key rotation under load: WeChat Pay (the sandbox) knows the old and the new
/// merchant certificate; while orders flow, the configuration is switched to the new key and
/// serial. Every order is delivered and committed, no post is refused (no 401), nothing is
/// dead-lettered, and the posts after the rotation are signed with the new serial. A reload that
/// fails (a key file that is not a key) keeps the keys in use, counted as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_key_rotation_under_load_fails_no_post() {
    let (old, new) = (keys(), other_keys());
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let mut sandbox_config = SandboxConfig::from_generated(old).expect("sandbox config");
    sandbox_config.merchants.push(MerchantIdentity {
        mchid: new.mchid.clone(),
        serial: new.merchant_serial.clone(),
        public_key: merchant_public_key(&new.merchant_public_pem).unwrap(),
    });
    let sandbox = SandboxHandle::start(sandbox_config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox");

    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("apiclient_key_new.pem");
    std::fs::write(&new_key, &new.merchant_private_pem).unwrap();
    let config_path = dir.path().join("catering-sync.toml");
    let base = |extra: &str| {
        config_text(
            &broker.bootstrap(),
            &names,
            &sandbox.base_url(),
            &format!("[wechatpay]\nkey_reload_interval_ms = 100\n{extra}"),
        )
    };
    write_atomically(&config_path, &base(""));
    let app = RunningApp::start_config(Config::load(&config_path).expect("config")).await;

    let orders = gen_orders("ROT", 300);
    let (done, ()) = across_a_change(&broker, &names, &sandbox, &orders, || async {
        // The rotation: a new key file and the configuration naming it and its serial, at once.
        write_atomically(
            &config_path,
            &base(&format!(
                "merchant_serial = \"{}\"\nprivate_key_file = \"{}\"",
                new.merchant_serial,
                new_key.display()
            )),
        );
        let reloaded = eventually(Duration::from_secs(30), || async {
            metric(&app, "catering_sync_key_reloads_total{outcome=\"ok\"}").await >= 1.0
        })
        .await;
        assert!(reloaded, "the changed files were reloaded");
    })
    .await;
    let stats = sandbox.stats();
    assert!(done, "not all delivered and committed: {stats:?}");
    assert_eq!(
        stats.responses_by_status.get(&401),
        None,
        "no post refused: {stats:?}"
    );
    assert!(
        stats
            .signed_by
            .get(&new.merchant_serial)
            .copied()
            .unwrap_or(0)
            > 0,
        "posts after the rotation are signed with the new serial: {stats:?}"
    );
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "nothing dead-lettered"
    );

    // A broken key file: the reload fails and the new keys stay in use.
    std::fs::write(&new_key, "not a key").unwrap();
    let failed = eventually(Duration::from_secs(30), || async {
        metric(&app, "catering_sync_key_reloads_total{outcome=\"failed\"}").await >= 1.0
    })
    .await;
    assert!(failed, "the broken reload is counted");
    let more = gen_orders("ROTB", 5);
    let d = broker
        .produce_batch(&names.input, interleave(&more, 0))
        .await;
    let more_done = eventually(Duration::from_secs(60), || async {
        check_delivered(&sandbox, &more).is_ok()
    })
    .await;
    assert!(
        more_done,
        "still delivering with the keys in use: {:?}",
        sandbox.stats()
    );
    drop(d);
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}
