//! Platform-certificate mode and the backup endpoint (issue 13, 2 and 5), over real HTTP against
//! the sandbox: the certificates downloaded from `GET /v3/certificates` (AEAD_AES_256_GCM with the
//! APIv3 key), a rotation of the signing certificate under load, a migration from certificates to
//! the public key mid-stream, and failover to the backup endpoint when the primary refuses
//! connections.

use std::time::Duration;

use catering_sync::config::Config;
use catering_sync::sandbox::{SandboxConfig, SandboxHandle};

use crate::broker::{Broker, TestBroker};
use crate::harness::{
    eventually, fresh_platform_certificate, keys, keys_dir, platform_certificate,
};
use crate::stack::*;

/// The sandbox as WeChat Pay for a merchant in platform-certificate mode: the platform
/// certificate signs every answer to a request that does not name the public key, and
/// `GET /v3/certificates` lists it encrypted with `apiv3_key`.
async fn platform_sandbox(apiv3_key: &str) -> SandboxHandle {
    let mut config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    config.platform_certificate = Some(platform_certificate().clone());
    config.apiv3_key = Some(apiv3_key.to_string());
    SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox")
}

/// A directory with the APIv3 key file, and the `[wechatpay]` overrides of platform-certificate
/// mode: no configured verification key, the key file, and `extra`.
struct Platform {
    dir: tempfile::TempDir,
    apiv3_key: String,
}

impl Platform {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let apiv3_key = catering_sync::keygen::apiv3_key(&mut rand::rngs::OsRng);
        std::fs::write(dir.path().join("apiv3.key"), format!("{apiv3_key}\n")).unwrap();
        Self { dir, apiv3_key }
    }

    /// `extra` may add `[[wechatpay.verification_keys]]` (then they replace the test's).
    fn overrides(&self, extra: &str) -> String {
        let none = if extra.contains("[[wechatpay.verification_keys]]") {
            ""
        } else {
            "verification_keys = []\n"
        };
        format!(
            "[wechatpay]\n{none}apiv3_key_file = \"{}\"\nkey_reload_interval_ms = 100\n{extra}",
            self.dir.path().join("apiv3.key").display()
        )
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("catering-sync.toml")
    }
}

/// A rotation of the platform certificate under load: WeChat Pay lists a new certificate, then
/// signs with it. The periodic download is an hour away, so only the refresh on the first
/// unknown serial can make the new answers verify: every order is delivered and committed, no
/// answer fails verification (the refresh runs before the answer is judged), nothing is
/// dead-lettered, and exactly one download was triggered by the unknown serial.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_platform_certificate_rotation_under_load_fails_no_post() {
    let platform = Platform::new();
    let sandbox = platform_sandbox(&platform.apiv3_key).await;
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        &platform.overrides(""),
    ))
    .await;
    assert_eq!(
        metric(
            &app,
            "catering_sync_certificate_downloads_total{outcome=\"ok\",trigger=\"scheduled\"}"
        )
        .await,
        1.0,
        "the certificates are downloaded at start-up"
    );

    let orders = gen_orders("PCR", 300);
    let next = fresh_platform_certificate(0);
    let (done, ()) = across_a_change(&broker, &names, &sandbox, &orders, || async {
        sandbox.list_platform_certificate(next.clone());
        assert!(sandbox.sign_with_platform_certificate(&next.serial));
    })
    .await;
    let stats = sandbox.stats();
    assert!(done, "not all delivered and committed: {stats:?}");
    assert_eq!(
        metric_sum(&app, "catering_sync_response_signature_failures_total").await,
        0.0,
        "no answer failed verification"
    );
    assert_eq!(
        metric(
            &app,
            "catering_sync_certificate_downloads_total{outcome=\"ok\",trigger=\"unknown_serial\"}"
        )
        .await,
        1.0,
        "one download for the new serial, however many answers named it"
    );
    assert_eq!(
        metric(
            &app,
            &format!(
                "catering_sync_verification_key_expiry_timestamp_seconds{{key=\"{}\"}}",
                next.serial
            )
        )
        .await,
        next.not_after as f64,
        "the new certificate's notAfter is exported"
    );
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "nothing dead-lettered"
    );
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}

/// A certificate listed before its validity starts is held but never trusted early: an answer
/// signed with it fails verification (`key_not_valid`) and is retried, never committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_not_trusted_before_its_validity_starts() {
    let platform = Platform::new();
    let sandbox = platform_sandbox(&platform.apiv3_key).await;
    let early = fresh_platform_certificate(7 * 86_400);
    sandbox.list_platform_certificate(early.clone());
    let client = platform_client(&sandbox, &platform).await;
    let ok = client
        .sync_status(crate::harness::bytes(&crate::harness::sp_body(
            "PCE-1",
            "CREATE_DEAL",
        )))
        .await;
    assert_eq!(ok.status, Some(204));
    assert!(
        matches!(
            ok.disposition,
            catering_sync::wechatpay::Disposition::Delivered
        ),
        "{:?}",
        ok.disposition
    );
    assert!(sandbox.sign_with_platform_certificate(&early.serial));
    let early_answer = client
        .sync_status(crate::harness::bytes(&crate::harness::sp_body(
            "PCE-2",
            "CREATE_DEAL",
        )))
        .await;
    assert!(
        format!("{:?}", early_answer.disposition).contains("KeyNotValid"),
        "{:?}",
        early_answer.disposition
    );
    sandbox.shutdown().await;
}

/// The client the service builds from a platform-certificate configuration, after its start-up
/// download.
async fn platform_client(
    sandbox: &SandboxHandle,
    platform: &Platform,
) -> catering_sync::wechatpay::WechatPayClient {
    let text = config_text(
        "127.0.0.1:9",
        &Names::fresh(),
        &sandbox.base_url(),
        &platform.overrides(""),
    );
    let config = Config::from_toml(&text, std::iter::empty()).expect("config");
    let client = catering_sync::app::wechatpay_client(&config).expect("client");
    client
        .download_certificates(catering_sync::wechatpay::client::CertificateTrigger::Scheduled)
        .await
        .expect("download");
    client
}

/// A merchant migrating from platform certificates to the public key, mid-stream: the service
/// starts in platform-certificate mode (no public key configured, so it names none and the
/// certificate signs); while orders flow, the configuration gains the public key and is
/// reloaded, so it names the public key and WeChat Pay signs with it. Every order is delivered
/// and committed, no answer fails verification, nothing is dead-lettered, and both keys signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_from_certificates_to_the_public_key_mid_stream_fails_no_post() {
    let platform = Platform::new();
    let sandbox = platform_sandbox(&platform.apiv3_key).await;
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let text = |extra: &str| {
        config_text(
            &broker.bootstrap(),
            &names,
            &sandbox.base_url(),
            &platform.overrides(extra),
        )
    };
    write_atomically(&platform.config_path(), &text(""));
    let app =
        RunningApp::start_config(Config::load(&platform.config_path()).expect("config")).await;

    let orders = gen_orders("PKM", 300);
    let (done, before) = across_a_change(&broker, &names, &sandbox, &orders, || async {
        // The operator adds the public key WeChat Pay's migration guide hands out.
        let public_key = keys_dir().join(catering_sync::keygen::files::WECHATPAY_PUBLIC);
        write_atomically(
            &platform.config_path(),
            &text(&format!(
                "[[wechatpay.verification_keys]]\nkey_id = \"{}\"\npublic_key_file = \"{}\"",
                keys().wechatpay_key_id,
                public_key.display()
            )),
        );
        let reloaded = eventually(Duration::from_secs(30), || async {
            metric(&app, "catering_sync_key_reloads_total{outcome=\"ok\"}").await >= 1.0
        })
        .await;
        assert!(reloaded, "the changed configuration was reloaded");
        sandbox.stats()
    })
    .await;
    let stats = sandbox.stats();
    assert!(done, "not all delivered and committed: {stats:?}");
    let signed =
        |s: &catering_sync::sandbox::Stats, k: &str| s.signed_with.get(k).copied().unwrap_or(0);
    assert!(signed(&before, "platform_certificate") > 0, "{before:?}");
    assert!(
        signed(&stats, "public_key") > signed(&before, "public_key"),
        "after the reload WeChat Pay signs with the public key: {stats:?}"
    );
    assert_eq!(
        metric_sum(&app, "catering_sync_response_signature_failures_total").await,
        0.0,
        "no answer failed verification"
    );
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "nothing dead-lettered"
    );
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}

/// A port nothing listens on (bound, then released).
/// A port that refuses connections until the socket listens: bound (so no other test can take
/// it meanwhile) but not listening.
fn refused_port() -> tokio::net::TcpSocket {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket
}

/// The backup endpoint: the primary refuses connections, so requests go to the backup (the same
/// signed bytes: the host is not signed) and every order is delivered, the active endpoint
/// exported as the backup; once the primary listens again, a probe finds it and requests go back
/// to it. An HTTP answer of the primary — a 500 — never fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backup_endpoint_takes_over_while_the_primary_refuses_connections() {
    let reserved = refused_port();
    let primary = reserved.local_addr().unwrap();
    let backup = crate::harness::sandbox().await;
    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &format!("http://{primary}"),
        &format!(
            "[wechatpay]\nbackup_base_url = \"{}\"\nbackup_probe_interval_ms = 200",
            backup.base_url()
        ),
    ))
    .await;
    let orders = gen_orders("BAK", 50);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 0))
        .await;
    let done = delivered_and_committed(
        &broker,
        &names,
        &backup,
        &orders,
        &ends(&delivered),
        2,
        Duration::from_secs(60),
    )
    .await;
    assert!(done, "delivered through the backup: {:?}", backup.stats());
    assert_eq!(
        metric(
            &app,
            "catering_sync_wechatpay_endpoint_active{endpoint=\"backup\"}"
        )
        .await,
        1.0
    );
    assert!(
        broker.read_all(&names.dlq).await.is_empty(),
        "nothing dead-lettered"
    );

    // The primary is back (it answers 500 to everything: an HTTP answer, never a failover).
    let mut config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    config.faults = catering_sync::sandbox::Faults {
        rate_500: 1.0,
        ..Default::default()
    };
    let primary_sandbox =
        SandboxHandle::serve(config, reserved.listen(1024).unwrap()).expect("primary");
    // Traffic again: the first request due for a probe goes to the primary (requests sent while
    // that probe is on the wire still go to the backup, rightly). Its answer, a 500, brings
    // traffic back.
    let waking = gen_orders("BAKW", 5);
    broker
        .produce_batch(&names.input, interleave(&waking, 0))
        .await;
    let back = eventually(Duration::from_secs(30), || async {
        metric(
            &app,
            "catering_sync_wechatpay_endpoint_active{endpoint=\"primary\"}",
        )
        .await
            == 1.0
    })
    .await;
    assert!(back, "a probe found the primary again");
    // From now on every request goes to the primary, and its 500s are retried there.
    let before = primary_sandbox.stats().requests;
    let more = gen_orders("BAKP", 5);
    broker
        .produce_batch(&names.input, interleave(&more, 0))
        .await;
    let answered = eventually(Duration::from_secs(30), || async {
        primary_sandbox.stats().requests >= before + 10
    })
    .await;
    assert!(answered, "{:?}", primary_sandbox.stats());
    // The primary recovers: the 5 orders arrive there, none of them ever at the backup.
    primary_sandbox.set_faults(Default::default());
    let at_primary = eventually(Duration::from_secs(60), || async {
        more.iter()
            .all(|o| !primary_sandbox.posts(&o.no).is_empty())
    })
    .await;
    assert!(at_primary, "{:?}", primary_sandbox.stats());
    assert!(
        more.iter().all(|o| backup.posts(&o.no).is_empty()),
        "a 500 of the primary is retried on the primary, never sent to the backup"
    );
    app.stop().await.expect("clean stop");
    primary_sandbox.shutdown().await;
    backup.shutdown().await;
}

/// A certificate list whose own signature verifies with no key held or listed is refused: the
/// sandbox signs its list with a certificate it no longer lists (as an attacker replaying a
/// stolen key could), so the download fails and the certificates held are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_list_that_does_not_verify_is_refused() {
    let platform = Platform::new();
    let sandbox = platform_sandbox(&platform.apiv3_key).await;
    let client = platform_client(&sandbox, &platform).await;
    let held: Vec<String> = client
        .key_store()
        .downloaded()
        .ids()
        .map(str::to_string)
        .collect();
    let rogue = fresh_platform_certificate(0);
    sandbox.list_platform_certificate(rogue.clone());
    assert!(sandbox.sign_with_platform_certificate(&rogue.serial));
    sandbox.unlist_platform_certificate(&rogue.serial);
    let e = client
        .download_certificates(catering_sync::wechatpay::client::CertificateTrigger::Scheduled)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            catering_sync::wechatpay::platform::PlatformError::Unverified(_)
        ),
        "{e}"
    );
    let still: Vec<String> = client
        .key_store()
        .downloaded()
        .ids()
        .map(str::to_string)
        .collect();
    assert_eq!(still, held, "the certificates held are kept");
    sandbox.shutdown().await;
}
