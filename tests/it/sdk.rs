//! The official Node.js SDK (wechatpay-axios-plugin) against the sandbox: its signed requests are
//! accepted, it verifies the sandbox's signed answers, and a forged answer is refused by it.

use std::io::Write;
use std::process::{Command, Stdio};

use catering_sync::sandbox::Faults;

use crate::harness::{keys, keys_dir, sandbox_with, sp_body};

fn sdk_post(base_url: &str, body: &serde_json::Value) -> (bool, serde_json::Value) {
    sdk_post_verifying_with(base_url, body, &keys().wechatpay_key_id, None)
}

/// Post `body` with the SDK, which verifies the answer with the key `key_id` (the public key, or
/// the certificate file `key_file`).
fn sdk_post_verifying_with(
    base_url: &str,
    body: &serde_json::Value,
    key_id: &str,
    key_file: Option<&std::path::Path>,
) -> (bool, serde_json::Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/interop.js");
    let k = keys();
    let mut child = Command::new("node")
        .arg(script)
        .args([
            base_url,
            keys_dir().to_str().unwrap(),
            &k.mchid,
            &k.merchant_serial,
            key_id,
        ])
        .args(key_file)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed (scripts/test.sh installs nodejs and the SDK)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "SDK output: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_and_the_sandbox_accept_each_other() {
    let sb = sandbox_with(Faults::default()).await;
    let url = sb.base_url();
    let body = sp_body("SDK-1", "CREATE_DEAL");
    let (ok, result) = tokio::task::spawn_blocking(move || sdk_post(&url, &body))
        .await
        .unwrap();
    assert!(ok, "{result}");
    assert_eq!(result["status"], 204);
    assert_eq!(
        sb.posts("SDK-1").len(),
        1,
        "the SDK-signed request was accepted and recorded"
    );
    // A body rule violation: the SDK sees WeChat Pay's error.
    let url = sb.base_url();
    let mut bad = sp_body("SDK-2", "CREATE_DEAL");
    bad["total_amount"] = serde_json::json!("100");
    let (ok, result) = tokio::task::spawn_blocking(move || sdk_post(&url, &bad))
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(
        (result["status"].as_u64(), result["data"]["code"].as_str()),
        (Some(400), Some("PARAM_ERROR")),
        "{result}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_refuses_a_204_with_a_wrong_signature() {
    let sb = sandbox_with(Faults {
        rate_bad_signature: 1.0,
        ..Faults::default()
    })
    .await;
    let url = sb.base_url();
    let (ok, result) =
        tokio::task::spawn_blocking(move || sdk_post(&url, &sp_body("SDK-3", "CREATE_DEAL")))
            .await
            .unwrap();
    assert!(!ok, "the SDK verifies responses: {result}");
    assert_eq!(sb.stats().faults.get("bad_signature"), Some(&1));
    sb.shutdown().await;
}

/// Platform-certificate mode: the SDK's certificate download (its own AES-GCM decryption and its
/// own response verifier, `tests/sdk/certificates.js`) accepts the sandbox's
/// `GET /v3/certificates` and saves the sandbox's certificate byte for byte; the SDK then verifies
/// the sandbox's certificate-signed 204 with the certificate it downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_downloads_the_sandbox_s_certificates_and_verifies_with_them() {
    let cert = crate::harness::platform_certificate().clone();
    let apiv3_key = catering_sync::keygen::apiv3_key(&mut rand::rngs::OsRng);
    let mut config = catering_sync::sandbox::SandboxConfig::from_generated(keys()).unwrap();
    config.platform_certificate = Some(cert.clone());
    config.apiv3_key = Some(apiv3_key.clone());
    let sb = catering_sync::sandbox::SandboxHandle::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/certificates.js");
    let k = keys();
    let args = [
        script.to_string(),
        sb.base_url(),
        keys_dir().display().to_string(),
        k.mchid.clone(),
        k.merchant_serial.clone(),
        apiv3_key,
        out.path().display().to_string(),
    ];
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk"))
            .output()
    })
    .await
    .unwrap()
    .expect("node runs the SDK");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains(&cert.serial), "{stdout}");
    let saved = out.path().join(format!("wechatpay_{}.pem", cert.serial));
    let downloaded = std::fs::read_to_string(&saved).expect("the SDK saved the certificate");
    assert_eq!(downloaded, cert.certificate_pem, "decrypted byte for byte");

    let url = sb.base_url();
    let serial = cert.serial.clone();
    let (ok, result) = tokio::task::spawn_blocking(move || {
        sdk_post_verifying_with(
            &url,
            &sp_body("SDK-PC", "CREATE_DEAL"),
            &serial,
            Some(&saved),
        )
    })
    .await
    .unwrap();
    assert!(ok, "{result}");
    assert_eq!(result["status"], 204);
    assert_eq!(
        sb.stats().signed_with.get("platform_certificate"),
        Some(&1),
        "signed with the certificate: {:?}",
        sb.stats()
    );
    sb.shutdown().await;
}
