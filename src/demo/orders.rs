//! Realistic generated orders for the demo: both variants, Chinese dish names, 1–8 dishes,
//! updates, payments, duplicate deliveries, and a handful of deliberately bad events.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::event::{decode, DecodeLimits};
use crate::snapshot::Defaults;

const DISHES: [(&str, &str, i64); 16] = [
    ("宫保鸡丁", "SICHUAN_CUISINE", 3800),
    ("鱼香肉丝", "SICHUAN_CUISINE", 3200),
    ("麻婆豆腐", "SICHUAN_CUISINE", 1800),
    ("北京烤鸭", "BEIJING_CUISINE", 12800),
    ("小笼包", "JIANGZHE_CUISINE", 2200),
    ("西湖醋鱼", "JIANGZHE_CUISINE", 6800),
    ("剁椒鱼头", "HUNAN_CUISINE", 8800),
    ("白切鸡", "GUAGNDONG_CUISINE", 5800),
    ("锅包肉", "DONGBEI_CUISINE", 4600),
    ("羊肉串", "XINJIANG_CUISINE", 600),
    ("冬阴功汤", "SOUTHEAST_ASIAN_CUISINE", 5200),
    ("毛肚", "HOT_POT", 3600),
    ("酸梅汤", "DRINK", 800),
    ("珍珠奶茶", "DRINK", 1500),
    ("米饭", "FAST_FOOD", 200),
    ("春卷", "SNACK", 1200),
];

/// One generated order: its number and its events (record values) in order.
#[derive(Debug, Clone)]
pub struct DemoOrder {
    /// `out_order_no`, also the record key.
    pub no: String,
    /// Events in the order they are produced (duplicates included).
    pub events: Vec<Vec<u8>>,
    /// Whether the order is paid.
    pub paid: bool,
}

impl DemoOrder {
    /// The final request body the pure core's plan posts for the events (each post taken as
    /// acknowledged).
    pub fn expected_body(&self) -> Option<Value> {
        let events: Vec<_> = self
            .events
            .iter()
            .map(|e| decode(e, &DecodeLimits::default()).ok())
            .collect::<Option<_>>()?;
        let posts = crate::plan::acknowledged_posts(&events, &Defaults::default());
        serde_json::from_slice(&posts.last()?.bytes).ok()
    }
}

/// A deliberately bad record: key, value, and the dead-letter reason it must get.
#[derive(Debug, Clone)]
pub struct BadEvent {
    /// Record key.
    pub key: Option<String>,
    /// Record value.
    pub value: Vec<u8>,
    /// Expected `catering-sync.reason`.
    pub reason: &'static str,
}

fn dish_list<R: Rng>(rng: &mut R) -> (Vec<Value>, i64) {
    let n = rng.gen_range(1..=8);
    let mut total = 0;
    let dishes = DISHES
        .choose_multiple(rng, n)
        .enumerate()
        .map(|(i, (name, kind, price))| {
            let count = if *kind == "DRINK" && rng.gen_bool(0.3) { 1.5 } else { f64::from(rng.gen_range(1..=3)) };
            total += (*price as f64 * count).round() as i64;
            let mut d = json!({"out_dish_no": format!("D{i:03}"), "name": name, "price": price, "unit": if count.fract() != 0.0 { "BY_WEIGHT" } else { "BY_SHARE" }, "count": count, "type": kind});
            if rng.gen_bool(0.2) {
                d["properties"] = json!({"taste": "微辣 | 少盐", "cuisine": "川菜", "main_material": "鸡肉", "ingredients": "花生 | 辣椒"});
            }
            d
        })
        .collect();
    (dishes, total)
}

fn event(no: &str, seq: u64, minute: u32, patch: Value) -> Vec<u8> {
    json!({"event_id": format!("{no}-{seq}"), "out_order_no": no, "occurred_at": format!("2026-11-27T12:{:02}:00+08:00", minute % 60), "seq": seq, "patch": patch})
        .to_string()
        .into_bytes()
}

/// `n` orders from `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<DemoOrder> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|i| one(&mut rng, i)).collect()
}

fn one<R: Rng>(rng: &mut R, i: usize) -> DemoOrder {
    let no = format!("2026112712{i:08}");
    let (dishes, total) = dish_list(rng);
    let discount = if rng.gen_bool(0.3) { total / 10 } else { 0 };
    let mut create = json!({
        "sub_mchid": "1900000109", "out_shop_no": format!("SHOP-{:03}", i % 37),
        "login_token": format!("demo-session-key-{i}"), "order_entry": "pages/menu/index",
        "total_amount": total, "discount_amount": discount, "user_amount": total - discount,
        "status": "CREATE_DEAL", "out_table_no": format!("A{:02}", i % 40), "people_count": rng.gen_range(1..=6),
        "dish_list": dishes,
    });
    if rng.gen_bool(0.8) {
        create["sp_mchid"] = json!("1900000001");
        create["sp_appid"] = json!("wx8888888888888888");
        create["openid"] = json!(format!("oUpF8uMuAJO_{i:016}"));
    } else {
        create["channel_id"] = json!("CH-0001");
        create["sub_appid"] = json!("wx9999999999999999");
        create["sub_openid"] = json!(format!("oSub_{i:016}"));
    }
    let mut events = vec![event(&no, 1, 0, create)];
    let mut seq = 1;
    for _ in 0..rng.gen_range(0..=2) {
        seq += 1;
        let patch = if rng.gen_bool(0.5) {
            let (dishes, total) = dish_list(rng);
            json!({"dish_list": dishes, "total_amount": total, "discount_amount": 0, "user_amount": total})
        } else {
            json!({"out_table_no": format!("B{:02}", rng.gen_range(0..40)), "people_count": rng.gen_range(1..=8)})
        };
        events.push(event(&no, seq, seq as u32, patch));
    }
    let paid = rng.gen_bool(0.85);
    if paid {
        seq += 1;
        events.push(event(
            &no,
            seq,
            30,
            json!({"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:30:00+08:00",
            "transaction_id": format!("42000020261127{i:014}"), "out_trade_no": format!("P{no}")}),
        ));
    }
    // Redeliveries: some events arrive twice.
    if rng.gen_bool(0.1) {
        let dup = events[rng.gen_range(0..events.len())].clone();
        events.push(dup);
    }
    DemoOrder { no, events, paid }
}

/// The deliberately bad events (`status_regression` targets `paid_order`, produced after it).
pub fn bad_events(paid_order: &str) -> Vec<BadEvent> {
    let bad = |key: Option<&str>, value: Vec<u8>, reason| BadEvent {
        key: key.map(str::to_string),
        value,
        reason,
    };
    vec![
        bad(Some("BAD-1"), b"{\"event_id\": \"oops\", ".to_vec(), "malformed"),
        bad(Some("BAD-2"), b"[\"not\", \"an\", \"object\"]".to_vec(), "malformed"),
        bad(Some("BAD-3"), json!({"out_order_no": "BAD-3", "occurred_at": "2026-11-27T12:00:00+08:00", "patch": {}}).to_string().into_bytes(), "invalid_event"),
        bad(None, json!({"event_id": "nokey", "out_order_no": "BAD-4", "occurred_at": "2026-11-27T12:00:00+08:00", "patch": {}}).to_string().into_bytes(), "invalid_event"),
        bad(Some("BAD-5"), json!({"event_id": "e", "out_order_no": "BAD-5", "occurred_at": "2026-11-27T12:00:00+08:00", "patch": {"status": "PAY_SUCCESS", "dish_list": [{"name": "拉面🍜"}]}}).to_string().into_bytes(), "invalid_event"),
        bad(Some("BAD-6"), json!({"event_id": "e", "out_order_no": "BAD-6", "occurred_at": "2026-11-27T12:00:00+08:00", "patch": {"status": "PAY_SUCCESS"}}).to_string().into_bytes(), "invalid_snapshot"),
        bad(Some(paid_order), json!({"event_id": format!("{paid_order}-back"), "out_order_no": paid_order, "occurred_at": "2026-11-27T13:00:00+08:00", "seq": 99, "patch": {"status": "CREATE_DEAL"}}).to_string().into_bytes(), "status_regression"),
    ]
}
