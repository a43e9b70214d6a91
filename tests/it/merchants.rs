//! Several signing merchants in one deployment (issue 13, 4), over real HTTP against the
//! sandbox: each order is signed by the merchant its `sp_mchid` names; WeChat Pay throttling one
//! merchant (every request 429) slows only that merchant's orders; an order naming no configured
//! merchant is dead-lettered as `unknown_merchant`.

use std::time::Duration;

use catering_sync::dead_letter::{header, header_value};
use catering_sync::keygen::GeneratedKeys;
use catering_sync::sandbox::{
    merchant_public_key, Faults, MerchantIdentity, SandboxConfig, SandboxHandle,
};

use crate::broker::{Broker, TestBroker};
use crate::harness::{eventually, keys};
use crate::stack::*;

const SECOND: &str = "1900000002";

/// The orders of `gen_orders`, signed for `sp_mchid` instead.
fn orders_of(tag: &str, n: usize, sp_mchid: &str) -> Vec<GenOrder> {
    let mut orders = gen_orders(tag, n);
    for o in &mut orders {
        for e in &mut o.events {
            let text = String::from_utf8(e.clone()).unwrap();
            *e = text
                .replace(
                    "\"sp_mchid\":\"1900000001\"",
                    &format!("\"sp_mchid\":\"{sp_mchid}\""),
                )
                .into_bytes();
        }
    }
    orders
}

fn second_merchant() -> &'static GeneratedKeys {
    static KEYS: std::sync::OnceLock<GeneratedKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        catering_sync::keygen::generate(SECOND, &mut rand::rngs::OsRng).expect("keygen")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_merchants_one_throttled_the_other_unaffected_and_an_unknown_one_dead_lettered() {
    let b = second_merchant();
    let mut sandbox_config = SandboxConfig::from_generated(keys()).expect("sandbox config");
    sandbox_config.merchants.push(MerchantIdentity {
        mchid: b.mchid.clone(),
        serial: b.merchant_serial.clone(),
        public_key: merchant_public_key(&b.merchant_public_pem).unwrap(),
    });
    // WeChat Pay throttles the second merchant: every one of its requests is answered 429.
    sandbox_config.faults = Faults {
        rate_429: 1.0,
        retry_after_secs: 1,
        only_mchid: Some(SECOND.into()),
        ..Faults::default()
    };
    let sandbox = SandboxHandle::start(sandbox_config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let b_key = dir.path().join("second_apiclient_key.pem");
    std::fs::write(&b_key, &b.merchant_private_pem).unwrap();

    let broker = TestBroker::start();
    let names = Names::fresh();
    broker.create_topic(&names.input, 2).await;
    let first = orders_of("MMA", 100, &keys().mchid);
    let second = orders_of("MMB", 100, SECOND);
    let unknown = orders_of("MMX", 1, "1900000999");
    let all: Vec<GenOrder> = first.iter().chain(&second).cloned().collect();
    let mut records = interleave(&all, 0);
    records.extend(interleave(&unknown, 0));
    let delivered = broker.produce_batch(&names.input, records).await;
    let app = RunningApp::start(&config_text(
        &broker.bootstrap(),
        &names,
        &sandbox.base_url(),
        &format!(
            "[[wechatpay.merchants]]\nmchid = \"{SECOND}\"\nmerchant_serial = \"{}\"\nprivate_key_file = \"{}\"",
            b.merchant_serial,
            b_key.display()
        ),
    ))
    .await;

    // The first merchant's orders all arrive while every request of the second is throttled.
    let first_done = eventually(Duration::from_secs(60), || async {
        check_delivered(&sandbox, &first).is_ok()
    })
    .await;
    assert!(
        first_done,
        "the first merchant is unaffected: {:?}",
        sandbox.stats()
    );
    assert!(
        second.iter().all(|o| sandbox.posts(&o.no).is_empty()),
        "none of the throttled merchant's orders was accepted meanwhile"
    );
    let dead = eventually(Duration::from_secs(30), || async {
        // The first event alone, then the later two (coalesced into one post) as one group.
        broker.read_all(&names.dlq).await.len() >= 2
    })
    .await;
    let letters = broker.read_all(&names.dlq).await;
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| {
            (
                header_value(&l.headers, header::REASON),
                header_value(&l.headers, header::ERROR),
            )
        })
        .collect();
    assert!(
        dead,
        "the order naming no configured merchant is dead-lettered: {reasons:?}"
    );
    // Its first event (the one naming the merchant) is `unknown_merchant`, with the reason in
    // plain words; the state is not kept, so its later events follow it into the topic.
    assert!(letters
        .iter()
        .all(|l| l.key.as_deref() == Some(unknown[0].no.as_bytes())));
    let first_letter = &letters[0].headers;
    assert_eq!(
        header_value(first_letter, header::REASON),
        Some("unknown_merchant")
    );
    let error = header_value(first_letter, header::ERROR).unwrap_or_default();
    assert!(
        error.contains("sp_mchid 1900000999 is not a configured signing merchant"),
        "{error}"
    );

    // WeChat Pay stops throttling: the second merchant's orders follow, nothing else is lost.
    sandbox.set_faults(Faults::default());
    let done = delivered_and_committed(
        &broker,
        &names,
        &sandbox,
        &all,
        &ends(&delivered),
        2,
        Duration::from_secs(120),
    )
    .await;
    let stats = sandbox.stats();
    assert!(done, "all delivered and committed: {stats:?}");
    assert_eq!(
        stats.signed_by.get(&b.merchant_serial).copied(),
        Some(
            second
                .iter()
                .map(|o| sandbox.posts(&o.no).len() as u64)
                .sum()
        ),
        "the second merchant's orders are signed with its own key: {stats:?}"
    );
    assert_eq!(
        stats.responses_by_status.get(&401),
        None,
        "no order signed by the wrong merchant: {stats:?}"
    );
    assert_eq!(
        broker.read_all(&names.dlq).await.len(),
        letters.len(),
        "nothing else dead-lettered"
    );
    app.stop().await.expect("clean stop");
    sandbox.shutdown().await;
}

/// Start-up refuses a merchant configured twice and a channel signed by two merchants, naming
/// the key; the single-merchant configuration is one merchant, unchanged.
#[test]
fn start_up_refuses_a_duplicate_merchant_and_a_channel_signed_twice() {
    use catering_sync::config::Config;
    let load = |overrides: &str| {
        let text = config_text(
            "127.0.0.1:9",
            &Names::fresh(),
            "http://127.0.0.1:9",
            overrides,
        );
        Config::from_toml(&text, std::iter::empty())
    };
    let one = load("").expect("single merchant");
    assert_eq!(one.wechatpay.signing_merchants().len(), 1);
    let merchant = |mchid: &str, channels: &str| {
        format!(
            "[[wechatpay.merchants]]\nmchid = \"{mchid}\"\nmerchant_serial = \"0A\"\nprivate_key_file = \"/k.pem\"\nchannel_ids = [{channels}]\n"
        )
    };
    let e = load(&merchant(&keys().mchid, "")).unwrap_err();
    assert_eq!(e.key, "wechatpay.merchants[0].mchid", "{e}");
    let e = load(&format!(
        "{}{}",
        merchant(SECOND, "\"CH-1\""),
        merchant("1900000003", "\"CH-1\"")
    ))
    .unwrap_err();
    assert_eq!(e.key, "wechatpay.merchants[1].channel_ids", "{e}");
    let two = load(&merchant(SECOND, "\"CH-1\"")).expect("two merchants");
    let all = two.wechatpay.signing_merchants();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0.mchid, SECOND);
    assert_eq!(all[1].1, vec!["CH-1".to_string()]);
}
