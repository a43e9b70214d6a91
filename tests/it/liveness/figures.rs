//! The outage figures of issue 11 (on demand, not in the test command): 3,000 orders in flight
//! through a 60 s outage, a 5-minute 80 % brownout and a 429 storm, each with the production
//! retry defaults. Each must end with every order delivered and 0 dead letters; the run prints
//! the time to drain the backlog once the fault ends.
//!
//! `cargo test --test it liveness::figures -- --ignored --nocapture --test-threads 1`
//! (`FIGURES_ORDERS`, `FIGURES_OUTAGE_S`, `FIGURES_BROWNOUT_S`, `FIGURES_STORM_S` override).

use std::time::{Duration, Instant};

use catering_sync::sandbox::Faults;

use crate::broker::Broker;
use crate::harness::eventually;
use crate::stack::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Production retry defaults (backoff 200 ms – 30 s, 10 attempts, breaker 5 / 50 % / 30 s window,
/// 5 s cooldown), not the tests' short ones.
fn production_retry(config: String) -> String {
    let mut table: toml::Table = config.parse().expect("a TOML configuration");
    table.insert("retry".into(), toml::Table::new().into());
    toml::to_string(&table).expect("a table serialises")
}

async fn scenario(name: &str, fault: Faults, fault_for: Duration) {
    let orders_n = env("FIGURES_ORDERS", 3_000) as usize;
    let (broker, names, sandbox) = tansu_stack(4, Faults::default()).await;
    let orders = gen_orders(&format!("FIG{}", &name[..3].to_uppercase()), orders_n);
    let delivered = broker
        .produce_batch(&names.input, interleave(&orders, 0))
        .await;
    let ends = ends(&delivered);
    let config = production_retry(config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        "",
    ));
    let app = RunningApp::start(&config).await;
    let warm = eventually(Duration::from_secs(120), || async {
        sandbox.stats().accepted >= 300
    })
    .await;
    assert!(warm, "{name}: warm-up");
    sandbox.set_faults(fault);
    let accepted_before = sandbox.stats().accepted;
    tokio::time::sleep(fault_for).await; // the fault's length, not a condition
    let during = sandbox.stats();
    sandbox.set_faults(Faults::default());
    let fixed = Instant::now();
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &orders,
        &ends,
        4,
        Duration::from_secs(900),
    )
    .await;
    let drain = fixed.elapsed();
    let dead = broker.read_all(&names.dlq).await.len();
    println!(
        "FIGURES {name}: {orders_n} orders ({} events), fault {:?}: {} accepted during it, answers {:?}; \
         after it: every order delivered and committed = {done}, backlog drained in {:.1} s; \
         dead letters {dead}",
        3 * orders_n,
        fault_for,
        during.accepted - accepted_before,
        during.responses_by_status,
        drain.as_secs_f64(),
    );
    assert!(done, "{name}: caught up");
    assert_eq!(dead, 0, "{name}: no dead letters");
    assert!(check_history(&sandbox, &orders).is_ok(), "{name}: history");
    app.stop().await.unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "outage figures: minutes long, run on demand"]
async fn figures_outage() {
    let s = env("FIGURES_OUTAGE_S", 60);
    let outage = Faults {
        rate_503: 1.0,
        ..Faults::default()
    };
    scenario("outage", outage, Duration::from_secs(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "outage figures: minutes long, run on demand"]
async fn figures_brownout() {
    let s = env("FIGURES_BROWNOUT_S", 300);
    let brownout = Faults {
        rate_500: 0.8,
        ..Faults::default()
    };
    scenario("brownout", brownout, Duration::from_secs(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "outage figures: minutes long, run on demand"]
async fn figures_429_storm() {
    let s = env("FIGURES_STORM_S", 30);
    let storm = Faults {
        rate_429: 1.0,
        retry_after_secs: 1,
        ..Faults::default()
    };
    scenario("storm", storm, Duration::from_secs(s)).await;
}
