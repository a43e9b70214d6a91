//! Operating it: `/metrics` of a running pipeline, and secrets kept out of the logs.

use std::collections::BTreeMap;
use std::time::Duration;

use catering_sync::sandbox::Faults;
use catering_sync::telemetry::metrics::NAMES;

use crate::broker::{Broker, Outgoing};
use crate::harness::eventually;
use crate::stack::*;

/// Parse the text exposition into `series → value` (series = name plus labels as written).
fn scrape(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn sum(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| *k == prefix || k.starts_with(&format!("{prefix}{{")))
        .map(|(_, v)| v)
        .sum()
}

async fn get(url: &str) -> BTreeMap<String, f64> {
    scrape(&reqwest::get(url).await.unwrap().text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_of_a_running_pipeline_are_exported_and_move() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("catering_sync=debug")
        .with_test_writer()
        .try_init();
    let (broker, names, sandbox) = tansu_stack(
        2,
        Faults {
            rate_503: 0.25,
            ..Faults::default()
        },
    )
    .await;
    let orders = gen_orders("MET", 30);
    let mut records = interleave(&orders, 3);
    records.push(Outgoing::keyed("bad", b"{not json".to_vec()));
    let delivered = broker.produce_batch(&names.input, records).await;
    let ends = ends(&delivered);
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[kafka.consumer]\n\"statistics.interval.ms\" = \"500\"",
    ))
    .await;
    let url = format!("http://{}/metrics", app.http_addr);
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        2,
        Duration::from_secs(90),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    // Lag comes from librdkafka statistics, committed offsets from the commit acknowledgements.
    let settled = eventually(Duration::from_secs(20), || async {
        let m = get(&url).await;
        m.contains_key("catering_sync_consumer_lag{partition=\"0\"}")
            && sum(&m, "catering_sync_consumer_lag") == 0.0
    })
    .await;
    assert!(settled, "lag per partition reported and back to 0");
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    for name in NAMES {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} exported");
    }
    // The families SREs expect of any service (issue 14): the process collector's, the build.
    for name in catering_sync::telemetry::metrics::PROCESS_NAMES {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} exported");
    }
    let build = format!(
        "catering_sync_build_info{{revision=\"{}\",version=\"{}\"}} 1",
        catering_sync::telemetry::metrics::REVISION,
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{build}");
    let m = scrape(&text);
    assert!(m["process_resident_memory_bytes"] > 0.0);
    assert!(m["process_start_time_seconds"] > 1.7e9);
    // Every event a verified 204 carried, its age observed once.
    assert!(
        m["catering_sync_event_age_seconds_count"] >= 60.0,
        "{}",
        m["catering_sync_event_age_seconds_count"]
    );
    let records = delivered.len() as f64;
    assert_eq!(
        sum(&m, "catering_sync_events_consumed_total"),
        records,
        "every record counted once"
    );
    assert!(
        m["catering_sync_posts_total{outcome=\"delivered\",status=\"204\"}"] >= 60.0,
        "a post per status per order"
    );
    assert!(
        m["catering_sync_posts_total{outcome=\"transient\",status=\"503\"}"] >= 1.0,
        "503s counted"
    );
    assert!(
        m["catering_sync_retries_total{cause=\"server_error\"}"] >= 1.0,
        "retries counted"
    );
    assert_eq!(
        m["catering_sync_dead_letters_total{reason=\"malformed\"}"], 1.0,
        "the bad record"
    );
    assert_eq!(
        m["catering_sync_dead_letters_total{reason=\"retries_exhausted\"}"],
        0.0
    );
    assert!(
        m["catering_sync_events_ignored_total{reason=\"duplicate_event\"}"] >= 10.0,
        "duplicates of every 3rd order"
    );
    assert_eq!(
        m["catering_sync_post_duration_seconds_count"],
        sum(&m, "catering_sync_posts_total")
    );
    assert_eq!(m["catering_sync_posts_in_flight"], 0.0);
    assert_eq!(m["catering_sync_tracked_orders"], 30.0);
    assert_eq!(m["catering_sync_assigned_partitions"], 2.0);
    assert_eq!(
        m["catering_sync_changelog_restore_duration_seconds_count"],
        2.0
    );
    assert!(m["catering_sync_rebalances_total{kind=\"assign\"}"] >= 1.0);
    assert!(m["catering_sync_changelog_writes_total"] >= 60.0);
    assert_eq!(m["catering_sync_circuit_breaker_state"], 0.0);
    assert_eq!(m["catering_sync_config_fault"], 0.0);
    assert_eq!(m["catering_sync_paused_partitions"], 0.0);
    for (p, end) in &ends {
        assert_eq!(
            m[&format!("catering_sync_committed_offset{{partition=\"{p}\"}}")],
            *end as f64
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    assert!(now - m["catering_sync_last_poll_timestamp_seconds"] < 10.0);
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Distinctive login tokens in delivered orders, in retried posts and in dead-lettered events:
/// none appears in the service's logs (debug level); every line is one flat JSON object, every
/// line about an event carries its partition and offset, and a retry line its order and the
/// trace id of the event's `traceparent` (from the order task's span).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_tokens_never_reach_the_logs() {
    let (broker, names, sandbox) = tansu_stack(
        2,
        Faults {
            rate_500: 0.2,
            rate_bad_signature: 0.05,
            ..Faults::default()
        },
    )
    .await;
    let orders = gen_orders("RED", 20);
    // A W3C trace context on every order's records: the order task's span carries its trace id.
    let mut records: Vec<Outgoing> = interleave(&orders, 2)
        .into_iter()
        .map(|r| r.header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01")))
        .collect();
    let mut tokens: Vec<String> = (0..20).map(|i| format!("LT-SECRET-{i}")).collect();
    // Dead-lettered events that carry a token: an invalid snapshot and a field-rule violation.
    for (i, patch) in [
        serde_json::json!({"login_token": "LT-DEADLETTER-A-7f3c", "status": "PAY_SUCCESS"}),
        serde_json::json!({"login_token": "LT-DEADLETTER-B-9e1d", "total_amount": "lots"}),
        serde_json::json!({"login_token": "LT-DEADLETTER-C-2a2a".repeat(20)}),
    ]
    .into_iter()
    .enumerate()
    {
        let v = serde_json::json!({"event_id": format!("dl{i}"), "out_order_no": format!("REDDL{i}"), "occurred_at": "2026-11-27T12:30:00+08:00", "patch": patch});
        records.push(Outgoing::keyed(
            format!("REDDL{i}"),
            v.to_string().into_bytes(),
        ));
    }
    tokens.extend(
        [
            "LT-DEADLETTER-A-7f3c",
            "LT-DEADLETTER-B-9e1d",
            "LT-DEADLETTER-C-2a2a",
        ]
        .map(String::from),
    );
    let delivered = broker.produce_batch(&names.input, records).await;
    let ends = ends(&delivered);
    let config = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let app = ChildApp::spawn_with_log_level(&config, "debug");
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        2,
        Duration::from_secs(90),
    )
    .await;
    assert!(done, "{:?}", check_delivered(&sandbox, &orders));
    app.sigterm();
    let mut app = app;
    app.wait_exit(Duration::from_secs(20)).await.expect("exits");
    let log = app.log_text();
    assert!(
        log.contains("dead-lettered") && log.contains("retrying"),
        "the log covers dead letters and failed posts"
    );
    for t in &tokens {
        assert!(
            !log.contains(t.as_str()),
            "login_token {t} leaked into the logs"
        );
    }
    assert!(
        !log.contains("PRIVATE KEY") && !log.contains("WECHATPAY2-SHA256-RSA2048"),
        "no key or Authorization header"
    );
    // Flat JSON lines (issue 14): the fixed keys and every field at the top level.
    let mut about_orders = 0;
    let mut retries_joined = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string()
                && v["level"].is_string()
                && v["message"].is_string()
                && v["service"] == "catering-sync"
                && v["version"] == env!("CARGO_PKG_VERSION")
                && v.get("fields").is_none()
                && v.get("span").is_none(),
            "{line}"
        );
        let message = v["message"].as_str().unwrap();
        if [
            "acknowledged by WeChat Pay",
            "dead-lettered",
            "event ignored",
        ]
        .contains(&message)
        {
            about_orders += 1;
            assert!(
                v["partition"].is_number()
                    && v["offset"].is_number()
                    && v.get("out_order_no").is_some(),
                "{line}"
            );
        }
        // A retry line names no order itself: its task's span joins it to the order and trace.
        if message == "retrying" {
            retries_joined += 1;
            assert!(
                v["partition"].is_number()
                    && v["out_order_no"]
                        .as_str()
                        .is_some_and(|o| o.starts_with("RED"))
                    && v["trace_id"] == TRACE_ID,
                "{line}"
            );
        }
    }
    assert!(
        about_orders > 0 && retries_joined > 0,
        "{about_orders} {retries_joined}"
    );
    assert_eq!(broker.read_all(&names.dlq).await.len(), 3);
    sandbox.shutdown().await;
}

/// Dead letters caused by a configuration gap (no `[defaults]` for the provider ids) are replayed
/// after the fix and reach the sandbox in order; `--dry-run` sends nothing; filters work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dlq_replay_re_publishes_fixed_dead_letters() {
    use serde_json::json;
    let (broker, names, sandbox) = tansu_stack(2, Faults::default()).await;
    let mut records = Vec::new();
    let nos: Vec<String> = (0..10).map(|i| format!("RPL{i:04}")).collect();
    for no in &nos {
        let create = json!({"event_id": format!("{no}-1"), "out_order_no": no, "occurred_at": "2026-11-27T12:30:00+08:00", "patch": {
            "sub_mchid": "1900000109", "openid": "oUser", "out_shop_no": "S1", "login_token": "t", "order_entry": "pages/menu",
            "total_amount": 100, "discount_amount": 0, "user_amount": 100, "status": "CREATE_DEAL",
            "dish_list": [{"out_dish_no": "D1", "name": "面", "price": 100, "unit": "BY_SHARE", "count": 1}]}});
        let pay = json!({"event_id": format!("{no}-2"), "out_order_no": no, "occurred_at": "2026-11-27T12:40:00+08:00", "patch": {
            "status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:40:00+08:00", "transaction_id": "4200001", "out_trade_no": format!("P{no}")}});
        records.push(
            Outgoing::keyed(no.clone(), create.to_string().into_bytes())
                .header("traceparent", b"00-abc".to_vec()),
        );
        records.push(Outgoing::keyed(no.clone(), pay.to_string().into_bytes()));
    }
    let delivered = broker.produce_batch(&names.input, records).await;
    let first_ends = ends(&delivered);
    let broken = config_text(&broker.bootstrap(), &names, &sandbox.base_url(), "");
    let app = RunningApp::start(&broken).await;
    let dead = eventually(Duration::from_secs(60), || async {
        all_committed(&broker, &names, &first_ends, 2).await
            && broker.read_all(&names.dlq).await.len() == 20
    })
    .await;
    assert!(dead, "every event dead-lettered without the provider ids");
    app.stop().await.unwrap();
    assert_eq!(sandbox.stats().accepted, 0);

    let fixed = config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "[defaults]\nsp_mchid = \"1900000001\"\nsp_appid = \"wx8888888888888888\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("fixed.toml");
    std::fs::write(&config_path, &fixed).unwrap();
    let cli = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_catering-sync"))
            .args(["dlq", "replay", "--config"])
            .arg(&config_path)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dry = cli(&["--dry-run"]);
    assert_eq!(
        dry.lines()
            .filter(|l| l.starts_with("would replay"))
            .count(),
        20,
        "{dry}"
    );
    assert!(
        dry.contains("20 dead letters read, 20 matched (invalid_snapshot: 20), 0 re-published"),
        "{dry}"
    );
    assert_eq!(
        broker.read_all(&names.input).await.len(),
        20,
        "a dry run sends nothing"
    );
    let one = cli(&[
        "--dry-run",
        "--order",
        "RPL0003",
        "--reason",
        "invalid_snapshot",
    ]);
    assert!(one.contains("2 matched"), "{one}");
    let none = cli(&["--dry-run", "--reason", "malformed"]);
    assert!(none.contains("0 matched"), "{none}");

    let app = RunningApp::start(&fixed).await;
    let sent = cli(&["--reason", "invalid_snapshot", "--rate", "0"]);
    assert!(sent.contains("20 re-published"), "{sent}");
    let replayed = broker.read_all(&names.input).await;
    assert_eq!(replayed.len(), 40);
    let with_header: Vec<_> = replayed
        .iter()
        .filter(|r| {
            r.headers
                .iter()
                .any(|(k, _)| k == "catering-sync.replayed-from")
        })
        .collect();
    assert_eq!(with_header.len(), 20);
    assert!(
        with_header
            .iter()
            .all(|r| !r.headers.iter().any(|(k, _)| k == "catering-sync.reason")),
        "failure headers are not carried back"
    );
    assert_eq!(
        with_header
            .iter()
            .filter(|r| r
                .headers
                .iter()
                .any(|(k, v)| k == "traceparent" && v == b"00-abc"))
            .count(),
        10,
        "original headers kept"
    );
    let all_ends = ends(
        &replayed
            .iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>(),
    );
    let done = eventually(Duration::from_secs(60), || async {
        nos.iter().all(|no| {
            sandbox
                .posts(no)
                .iter()
                .map(|p| p.status.clone().unwrap())
                .collect::<Vec<_>>()
                == ["CREATE_DEAL", "PAY_SUCCESS"]
        }) && all_committed(&broker, &names, &all_ends, 2).await
    })
    .await;
    assert!(
        done,
        "replayed orders reached the sandbox in order: {:?}",
        sandbox.summary()
    );
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}
