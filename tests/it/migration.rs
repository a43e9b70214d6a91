//! A merchant migrating from WeChat Pay platform certificates to the WeChat Pay public key
//! (WECHATPAY.md "Request signing" 5): while it migrates, WeChat Pay signs each answer with the key
//! the request's `Wechatpay-Serial` names, and with the platform certificate when it names none.

use std::time::Duration;

use catering_sync::sandbox::{SandboxConfig, SandboxHandle};

use crate::broker::{Broker, TestBroker};
use crate::harness::keys;
use crate::stack::*;

/// The sandbox as a migrating merchant sees WeChat Pay: a platform certificate (whose key the
/// service is not given) signs every answer to a request that does not name the public key.
async fn migrating_sandbox() -> SandboxHandle {
    let mut config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    config.platform_certificate = Some(crate::harness::platform_certificate().clone());
    SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox")
}

/// Configured with the public key only (what WeChat Pay's migration guide hands out), the service
/// names it in `Wechatpay-Serial` without being told to, so every answer is signed with a key it
/// has: all delivered, none signed with the certificate. (Before, it sent no `Wechatpay-Serial`
/// and retried certificate-signed 204s it could not verify for ever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mid_migration_the_public_key_is_named_by_default_and_every_answer_verifies() {
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let sandbox = migrating_sandbox().await;
    let orders = gen_orders("MIG", 20);
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
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        2,
        Duration::from_secs(60),
    )
    .await;
    let stats = sandbox.stats();
    assert!(done, "not all delivered and committed: {stats:?}");
    assert_eq!(
        stats.signed_with.get("platform_certificate"),
        None,
        "no answer signed with the certificate: {stats:?}"
    );
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}

/// Start-up refuses what would make every answer unverifiable: a `Wechatpay-Serial` that is not
/// a configured key, and the merchant's own certificate serial configured as a WeChat Pay key
/// (exit 2, the configuration key named); `""` opts out of sending one.
#[test]
fn start_up_refuses_a_serial_that_is_no_key_and_the_merchant_s_own_serial() {
    use catering_sync::app::wechatpay_client;
    use catering_sync::config::Config;
    let load = |overrides: &str| {
        let text = config_text(
            "127.0.0.1:9",
            &Names::fresh(),
            "http://127.0.0.1:9",
            overrides,
        );
        Config::from_toml(&text, std::iter::empty()).expect("test config")
    };
    let e =
        wechatpay_client(&load("[wechatpay]\nwechatpay_serial = \"PUB_KEY_ID_0999\"")).unwrap_err();
    assert_eq!(e.key, "wechatpay.wechatpay_serial", "{e}");
    assert!(e.problem.contains(&keys().wechatpay_key_id), "{e}");

    let pub_key = crate::harness::keys_dir().join(catering_sync::keygen::files::WECHATPAY_PUBLIC);
    let own = format!(
        "[[wechatpay.verification_keys]]\nkey_id = \"{}\"\npublic_key_file = \"{}\"",
        keys().merchant_serial,
        pub_key.display()
    );
    let e = wechatpay_client(&load(&own)).unwrap_err();
    assert_eq!(e.key, "wechatpay.verification_keys", "{e}");
    assert!(e.problem.contains("merchant's own"), "{e}");

    wechatpay_client(&load("[wechatpay]\nwechatpay_serial = \"\"")).expect("\"\" sends none");
    wechatpay_client(&load("")).expect("the default names the public key");
}
