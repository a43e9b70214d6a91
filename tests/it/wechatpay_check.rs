//! `catering-sync wechatpay check` against the sandbox over real HTTP: a good configuration, and
//! each kind of bad one — a merchant key WeChat Pay does not know, a verification key that does
//! not verify, a key id WeChat Pay does not sign with, an endpoint that is down, a serial that is
//! no configured key.

use std::path::Path;
use std::process::Output;

use catering_sync::sandbox::Faults;

use crate::harness::{keys, other_keys};
use crate::stack::{config_text, sandbox_with, Names};

const BIN: &str = env!("CARGO_BIN_EXE_catering-sync");

/// Run `wechatpay check` on the test configuration for `base_url` with `overrides` merged.
async fn check(dir: &Path, base_url: &str, overrides: &str) -> (Option<i32>, String) {
    let path = dir.join(format!("check-{}.toml", rand::random::<u32>()));
    let text = config_text("127.0.0.1:9", &Names::fresh(), base_url, overrides);
    std::fs::write(&path, text).unwrap();
    let out: Output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["--log-format", "json", "wechatpay", "check", "--config"])
            .arg(&path)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpay_check_reports_a_good_and_each_kind_of_bad_configuration() {
    let sandbox = sandbox_with(Faults::default()).await;
    let url = sandbox.base_url();
    let dir = tempfile::tempdir().unwrap();

    let (code, out) = check(dir.path(), &url, "").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   reachable      HTTP 404"), "{out}");
    assert!(out.contains("ok   clock skew"), "{out}");
    assert!(out.contains("ok   signature      accepted"), "{out}");
    let verified = format!(
        "ok   response       verified with {}",
        keys().wechatpay_key_id
    );
    assert!(out.contains(&verified), "{out}");
    assert!(out.contains("public-key mode"), "{out}");
    assert!(
        out.contains(&format!(
            "Wechatpay-Serial sent: {}",
            keys().wechatpay_key_id
        )),
        "{out}"
    );

    // A merchant private key that does not belong to the merchant serial: SIGN_ERROR, with the
    // signed message to compare.
    let wrong_key = write(
        dir.path(),
        "wrong_key.pem",
        &other_keys().merchant_private_pem,
    );
    let (code, out) = check(
        dir.path(),
        &url,
        &format!("[wechatpay]\nprivate_key_file = \"{wrong_key}\""),
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("FAIL signature      refused: SIGN_ERROR"),
        "{out}"
    );
    assert!(
        out.contains("the signed message was \"GET\\n/v3/certificates\\n"),
        "{out}"
    );

    // WeChat Pay's key id with another public key: the answer does not verify.
    let wrong_pub = write(
        dir.path(),
        "wrong_pub.pem",
        &other_keys().wechatpay_public_pem,
    );
    let (code, out) = check(
        dir.path(),
        &url,
        &format!(
            "[[wechatpay.verification_keys]]\nkey_id = \"{}\"\npublic_key_file = \"{wrong_pub}\"",
            keys().wechatpay_key_id
        ),
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("FAIL response       not verified"), "{out}");

    // A key under an id WeChat Pay does not sign with.
    let right_pub = write(dir.path(), "right_pub.pem", &keys().wechatpay_public_pem);
    let (code, out) = check(
        dir.path(),
        &url,
        &format!(
            "[[wechatpay.verification_keys]]\nkey_id = \"PUB_KEY_ID_0999\"\npublic_key_file = \"{right_pub}\""
        ),
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(&format!(
            "FAIL response       signed with {}, which is not a configured key",
            keys().wechatpay_key_id
        )),
        "{out}"
    );

    // Nothing listens: not reachable.
    let (code, out) = check(dir.path(), "http://127.0.0.1:9", "").await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("FAIL reachable      no:"), "{out}");

    // A serial that is no configured key: refused before anything is sent.
    let (code, out) = check(
        dir.path(),
        &url,
        "[wechatpay]\nwechatpay_serial = \"PUB_KEY_ID_0999\"",
    )
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("wechatpay.wechatpay_serial"), "{out}");
    sandbox.shutdown().await;
}

/// Platform-certificate mode: with the right APIv3 key the check decrypts the listed certificate
/// and verifies the answer with it; with a wrong one it fails, saying the certificate did not
/// decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpay_check_in_platform_certificate_mode_needs_the_right_apiv3_key() {
    let cert = crate::harness::platform_certificate().clone();
    let apiv3_key = catering_sync::keygen::apiv3_key(&mut rand::rngs::OsRng);
    let mut config = catering_sync::sandbox::SandboxConfig::from_generated(keys()).unwrap();
    config.platform_certificate = Some(cert.clone());
    config.apiv3_key = Some(apiv3_key.clone());
    let sandbox =
        catering_sync::sandbox::SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "apiv3.key", &apiv3_key);
    let platform =
        |key: &str| format!("[wechatpay]\nverification_keys = []\napiv3_key_file = \"{key}\"");
    let (code, out) = check(dir.path(), &sandbox.base_url(), &platform(&good)).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok   reachable      HTTP 200"), "{out}");
    assert!(
        out.contains(&format!(
            "ok   response       verified with {}",
            cert.serial
        )),
        "{out}"
    );
    assert!(
        out.contains("decrypts the 1 listed certificate(s)"),
        "{out}"
    );
    assert!(out.contains(&cert.serial), "the listing names it: {out}");

    let wrong = write(
        dir.path(),
        "wrong.key",
        &catering_sync::keygen::apiv3_key(&mut rand::rngs::OsRng),
    );
    let (code, out) = check(dir.path(), &sandbox.base_url(), &platform(&wrong)).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("FAIL APIv3 key      a certificate did not decrypt"),
        "{out}"
    );
    assert!(
        !out.contains(&apiv3_key),
        "the APIv3 key is never printed: {out}"
    );
    sandbox.shutdown().await;
}
