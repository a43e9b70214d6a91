//! The official Node.js SDK (wechatpay-axios-plugin) against the sandbox: its signed requests are
//! accepted, it verifies the sandbox's signed answers, and a forged answer is refused by it.

use std::io::Write;
use std::process::{Command, Stdio};

use catering_sync::sandbox::Faults;

use crate::harness::{keys, keys_dir, sandbox_with, sp_body};

fn sdk_post(base_url: &str, body: &serde_json::Value) -> (bool, serde_json::Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/interop.js");
    let k = keys();
    let mut child = Command::new("node")
        .arg(script)
        .args([
            base_url,
            keys_dir().to_str().unwrap(),
            &k.mchid,
            &k.merchant_serial,
            &k.wechatpay_key_id,
        ])
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
