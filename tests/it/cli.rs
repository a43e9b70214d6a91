//! The binary: `keys generate`, `sandbox` as a process, `bench sign` on a tiny input, exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use catering_sync::sandbox::SandboxConfig;
use catering_sync::wechatpay::Disposition;

const BIN: &str = env!("CARGO_BIN_EXE_catering-sync");

#[tokio::test]
async fn keys_generate_then_sandbox_process_accepts_a_signed_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["keys", "generate", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("[wechatpay]") && stdout.contains("PUB_KEY_ID_"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("PRIVATE KEY"),
        "the snippet names files, it does not print keys"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("apiclient_key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key is 0600");
    }
    // The same directory loads as sandbox configuration, and the sandbox runs as a process.
    SandboxConfig::from_keys_dir(dir.path()).unwrap();
    let mut child = Command::new(BIN)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--keys-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base_url = line
        .trim()
        .strip_prefix("sandbox listening on ")
        .expect(&line)
        .to_string();

    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap();
    let identity: toml::Table = read("identity.toml").parse().unwrap();
    let key = catering_sync::wechatpay::MerchantKey::from_pem(&read("apiclient_key.pem")).unwrap();
    let creds = catering_sync::wechatpay::Credentials::new(
        identity["mchid"].as_str().unwrap(),
        identity["merchant_serial"].as_str().unwrap(),
        key,
    );
    let mut vk = catering_sync::wechatpay::VerificationKeys::new();
    vk.add_public_key_pem(
        identity["wechatpay_key_id"].as_str().unwrap(),
        &read("wechatpay_pub_key.pem"),
    )
    .unwrap();
    let config = catering_sync::wechatpay::ClientConfig {
        base_url,
        ..Default::default()
    };
    let client =
        catering_sync::wechatpay::WechatPayClient::new(&config, creds.into(), vk.into()).unwrap();
    let attempt = client
        .sync_status(crate::harness::bytes(&crate::harness::sp_body(
            "P-1",
            "CREATE_DEAL",
        )))
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(attempt.disposition, Disposition::Delivered);
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let bad_flag = Command::new(BIN)
        .args(["sandbox", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(bad_flag.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let missing_keys = Command::new(BIN)
        .args(["sandbox", "--listen", "127.0.0.1:0", "--keys-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(missing_keys.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_keys.stderr).contains("identity.toml"));
    let bad_rate = Command::new(BIN)
        .args(["sandbox", "--rate-500", "3", "--keys-dir"])
        .arg(crate::harness::keys_dir())
        .output()
        .unwrap();
    assert_eq!(bad_rate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_rate.stderr).contains("rate_500"));
}

#[test]
fn bench_sign_runs_on_a_tiny_input() {
    let key = crate::harness::keys_dir().join("apiclient_key.pem");
    let out = Command::new(BIN)
        .args([
            "bench",
            "sign",
            "--seconds",
            "0.05",
            "--threads",
            "1",
            "--key",
        ])
        .arg(key)
        .timeout_after(Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("| ring (production) | 1 |"), "{stdout}");
    assert!(stdout.contains("CPU ms per sign"), "{stdout}");
    assert!(stdout.contains("| rsa crate | 1 |"), "{stdout}");
}

trait TimeoutAfter {
    fn timeout_after(&mut self, limit: Duration) -> std::process::Output;
}

impl TimeoutAfter for Command {
    fn timeout_after(&mut self, limit: Duration) -> std::process::Output {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "command did not finish within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

#[test]
fn bench_state_runs_on_a_tiny_input() {
    let out = Command::new(BIN)
        .args(["bench", "state", "--orders", "200", "--dishes", "5"])
        .timeout_after(Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("| 5 | 200 |"), "{stdout}");
}

#[test]
fn check_event_reports_each_event_and_exits_1_on_rejections() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/order-events.jsonl"
    );
    let out = Command::new(BIN)
        .args(["check-event", sample])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the sample holds deliberately bad events"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "line 1: order 20261127000001 event e1: applied, no post (draft without status)",
        "line 2: order 20261127000001 event e2: applied, POST due (CREATE_DEAL",
        "line 3: order 20261127000001 event e2: ignored (duplicate_event)",
        "line 4: order 20261127000001 event e3: applied, POST due (PAY_SUCCESS",
        "line 5: order 20261127000001 event e4: REJECTED status_regression",
        "line 6: order 20261127000002 event x1: REJECTED invalid_snapshot: pay_time:",
        "line 7: REJECTED invalid_event: occurred_at:",
        "7 events: 3 applied, 2 posts, 1 ignored, 3 rejected",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("example-session-key"),
        "login_token is redacted"
    );
    // Only the good events: exit 0, from standard input.
    let good: String = std::fs::read_to_string(sample)
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    let mut child = Command::new(BIN)
        .args(["check-event", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(good.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
