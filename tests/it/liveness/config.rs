//! Configuration that would stall the service is refused before anything connects (issue 11,
//! findings 8 and 9): every duration and rate key has bounds, `run --check` and `run` exit 2
//! naming the key; environment overrides are parsed by the type of their key, so a numeric
//! merchant id, group id or password stays a string. (Before: `commit_interval_ms = 0` was
//! accepted, the pod turned ready and every worker panicked; a numeric `mchid` override exited 2
//! with "invalid type: integer".)
//!
//! The child binary is `$CATERING_SYNC_TEST_BIN` when set (to run these against another build).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use catering_sync::sandbox::Faults;

use crate::broker::{Broker, Outgoing};
use crate::stack::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn readyz(port: u16) -> u16 {
    match reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// A configuration whose key files exist (the test keys) and whose brokers and WeChat Pay are
/// never contacted by `--check`.
fn check_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = config_text("127.0.0.1:9", &Names::fresh(), "http://127.0.0.1:9", "");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `run --config <path> --check` with `env` (and no other `CATERING_SYNC__` variable).
fn check(path: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(service_binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("CATERING_SYNC__") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(path)
        .arg("--check")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}; stdout {:?}; stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Every key of the configuration that is a duration or a rate (crates/service/src/config.rs), and the sizes
/// that can stall it, each with a value absurdly large for it. Written out here on purpose, apart
/// from the list the service keeps.
const DURATION_AND_RATE_KEYS: [(&str, &str); 22] = [
    ("kafka.session_timeout_ms", "86400000"),
    ("wechatpay.request_timeout_ms", "86400000"),
    ("wechatpay.connect_timeout_ms", "86400000"),
    ("wechatpay.key_reload_interval_ms", "86400000"),
    ("wechatpay.max_rate_per_second", "1000000000"),
    ("pipeline.drain_timeout_ms", "86400000"),
    ("pipeline.commit_interval_ms", "86400000"),
    ("pipeline.shutdown_timeout_ms", "86400000"),
    ("pipeline.produce_fault_exit_ms", "86400000"),
    ("retry.initial_backoff_ms", "86400000"),
    ("retry.max_backoff_ms", "86400000"),
    ("retry.config_fault_retry_ms", "86400000"),
    ("retry.breaker_cooldown_ms", "86400000"),
    ("retry.breaker_window_ms", "86400000"),
    ("retry.breaker_failure_rate", "2"),
    ("retry.max_attempts", "1000000"),
    ("retry.breaker_threshold", "1000000"),
    ("state.final_retention_secs", "315360000"),
    ("state.sweep_interval_secs", "31536000"),
    ("pipeline.max_event_bytes", "1073741824"),
    ("pipeline.max_in_flight", "1000000"),
    ("pipeline.partition_buffer", "1000000000"),
];

fn var_of(key: &str) -> String {
    format!("CATERING_SYNC__{}", key.replace('.', "__").to_uppercase())
}

/// Each duration and rate key at 0 (and at an absurd value) makes `run --check` exit 2 with an
/// error that names the key and its bounds. `max_rate_per_second = 0` means "no limit" and is
/// accepted; a rate below 1/s (one post a second is the limiter's floor) is refused instead.
#[test]
fn every_duration_and_rate_key_out_of_bounds_fails_check_with_exit_2() {
    let (_dir, path) = check_config();
    let ok = check(&path, &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", shown(&ok));
    let mut accepted = Vec::new();
    for (key, absurd) in DURATION_AND_RATE_KEYS {
        let zero = if key == "wechatpay.max_rate_per_second" {
            "0.001"
        } else {
            "0"
        };
        for bad in [zero, absurd] {
            let var = var_of(key);
            let out = check(&path, &[(&var, bad)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(2)
                || !stderr.contains(key)
                || !stderr.contains(&format!("`{key}`: is {bad}; must be"))
                || !stderr.contains("within [")
            {
                accepted.push(format!("{key} = {bad}: {}", shown(&out)));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "{} out-of-bounds values not refused with a bound naming the key:\n{}",
        accepted.len(),
        accepted.join("\n")
    );
}

/// The three examples: a numeric merchant id, group id and SASL password given in the
/// environment pass `--check` (they are strings; before, "invalid type: integer `1900000001`,
/// expected a string"), and `--check` shows the identity it will use; an integer key given text
/// is an error naming the variable.
#[test]
fn numeric_looking_overrides_of_string_keys_pass_check_as_strings() {
    let (_dir, path) = check_config();
    let out = check(
        &path,
        &[
            ("CATERING_SYNC__WECHATPAY__MCHID", "1900000001"),
            ("CATERING_SYNC__KAFKA__GROUP_ID", "12345"),
            ("CATERING_SYNC__KAFKA__COMMON__SASL_PASSWORD", "00424242"),
            ("CATERING_SYNC__DEFAULTS__SUB_MCHID", "1900000109"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("mchid 1900000001") && stdout.contains("group 12345"),
        "{}",
        shown(&out)
    );
    assert!(
        !stdout.contains("00424242") && !String::from_utf8_lossy(&out.stderr).contains("00424242"),
        "the password is never shown: {}",
        shown(&out)
    );
    let bad = check(&path, &[("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT", "abc")]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        bad.status.code() == Some(2)
            && stderr.contains("CATERING_SYNC__PIPELINE__MAX_IN_FLIGHT")
            && stderr.contains("pipeline.max_in_flight"),
        "{}",
        shown(&bad)
    );
}

/// Whichever comes first for a child: it exits, or its `/readyz` answers 200.
enum Start {
    Exited(std::process::ExitStatus),
    Ready,
}

async fn exit_or_ready(app: &mut ChildApp, port: u16, limit: Duration) -> Option<Start> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = app.wait_exit(Duration::ZERO).await {
            return Some(Start::Exited(status));
        }
        if readyz(port).await == 200 {
            return Some(Start::Ready);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// `commit_interval_ms = 0` in the file: `run` exits 2 naming the key before it connects to
/// anything (no post reaches WeChat Pay). Before: the pod turned ready, then every worker panicked
/// ("`period` must be non-zero") and nothing was delivered or committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_commit_interval_is_refused_at_start() {
    let (broker, names, sandbox) = tansu_stack(2, Faults::default()).await;
    let orders = gen_orders("CIZ", 3);
    let records: Vec<Outgoing> = interleave(&orders, 0);
    broker.produce_batch(&names.input, records).await;
    let port = free_port();
    let config = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        &format!("[pipeline]\ncommit_interval_ms = 0\n[http]\nlisten = \"127.0.0.1:{port}\""),
    );
    let mut app = ChildApp::spawn(&config);
    let started = exit_or_ready(&mut app, port, Duration::from_secs(90)).await;
    match started {
        Some(Start::Exited(status)) => {
            let log = app.log_text();
            assert_eq!(status.code(), Some(2), "{log}");
            assert!(
                log.contains("pipeline.commit_interval_ms") && log.contains("must be within"),
                "{log}"
            );
            assert_eq!(sandbox.stats().requests, 0, "nothing was sent");
        }
        Some(Start::Ready) => {
            // Show what the accepted configuration does: the workers of both partitions panic.
            let panics = || -> Vec<String> {
                let log = app.log_text();
                let lines: Vec<&str> = log.lines().collect();
                (0..lines.len())
                    .filter(|&i| lines[i].contains("panicked"))
                    .map(|i| lines[i..(i + 2).min(lines.len())].join(" "))
                    .collect()
            };
            crate::harness::eventually(Duration::from_secs(30), || async { panics().len() >= 2 })
                .await;
            panic!(
                "commit_interval_ms = 0 was accepted: /readyz answered 200, then {} worker panic(s); /readyz now {}, {} posts delivered; {}",
                panics().len(),
                readyz(port).await,
                sandbox.stats().accepted,
                panics().join(" | ")
            );
        }
        None => panic!("neither exited nor ready: {}", app.log_text()),
    }
    drop(app);
    sandbox.shutdown().await;
}
