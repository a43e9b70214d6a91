//! Seeded generator of order streams for the chaos scenarios.
//!
//! Per order: a CREATE_DEAL with dishes, 1–4 updates (dish list and amounts, or table and
//! people), sometimes an update followed by one reverting it, a PAY_SUCCESS with
//! pay_time/transaction_id/out_trade_no, and for some orders updates after payment; a few orders
//! start at PAY_SUCCESS. `seq` increases per order. Some records are redelivered (the same value
//! produced again later). A few bad records of every kind: malformed (not JSON, not an object),
//! invalid_event (unknown patch field, missing event_id, no key), invalid_snapshot (a required
//! field removed), status_regression (CREATE_DEAL after PAY_SUCCESS). Orders are interleaved so many are
//! in flight at once; records are keyed by out_order_no.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::broker::Outgoing;

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

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Order numbers are `{tag}{i:06}`.
    pub tag: String,
    pub orders: usize,
    pub seed: u64,
    /// Share of good records produced a second time, later.
    pub redelivery_rate: f64,
    /// Orders in flight at once while interleaving.
    pub window: usize,
    /// Bad records of each of the seven kinds.
    pub bad_per_kind: usize,
}

impl Spec {
    pub fn new(tag: &str, orders: usize, seed: u64) -> Self {
        Spec {
            tag: tag.into(),
            orders,
            seed,
            redelivery_rate: 0.06,
            window: 64,
            bad_per_kind: 2,
        }
    }
}

/// A generated stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Records in produce order.
    pub records: Vec<Outgoing>,
    /// Order numbers.
    pub orders: Vec<String>,
    /// The bad records as the generator meant them: (key, value, reason).
    pub bad: Vec<(Option<String>, Vec<u8>, &'static str)>,
    /// Counts for the log: updates, reverts, post-payment updates, redeliveries.
    pub updates: usize,
    pub reverts: usize,
    pub after_payment: usize,
    pub redeliveries: usize,
}

impl Stream {
    /// The records split into `n` consecutive chunks (produced one after another, each order's
    /// records keep their order).
    pub fn chunks(&self, n: usize) -> Vec<Vec<Outgoing>> {
        let size = self.records.len().div_ceil(n.max(1)).max(1);
        self.records
            .chunks(size)
            .map(<[Outgoing]>::to_vec)
            .collect()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} orders, {} records ({} updates, {} reverts, {} after payment, {} redeliveries, {} bad)",
            self.orders.len(),
            self.records.len(),
            self.updates,
            self.reverts,
            self.after_payment,
            self.redeliveries,
            self.bad.len()
        )
    }
}

fn dish_list(rng: &mut StdRng) -> (Value, i64) {
    let n = rng.gen_range(1..=6);
    let mut total = 0;
    let dishes: Vec<Value> = DISHES
        .choose_multiple(rng, n)
        .enumerate()
        .map(|(i, (name, kind, price))| {
            let count = rng.gen_range(1..=3);
            total += price * count;
            json!({"out_dish_no": format!("D{i:03}"), "name": name, "price": price,
                   "unit": "BY_SHARE", "count": count, "type": kind})
        })
        .collect();
    (Value::Array(dishes), total)
}

/// A dish-list change: the patch's fields.
fn dish_change(rng: &mut StdRng) -> Map<String, Value> {
    let (dishes, total) = dish_list(rng);
    let discount = if rng.gen_bool(0.3) { total / 10 } else { 0 };
    let mut m = Map::new();
    m.insert("dish_list".into(), dishes);
    m.insert("total_amount".into(), json!(total));
    m.insert("discount_amount".into(), json!(discount));
    m.insert("user_amount".into(), json!(total - discount));
    m
}

fn table_change(rng: &mut StdRng) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "out_table_no".into(),
        json!(format!("B{:02}", rng.gen_range(0..40))),
    );
    m.insert("people_count".into(), json!(rng.gen_range(1..=8)));
    m
}

struct OrderGen {
    no: String,
    /// Current values of every field set so far (for reverts).
    current: Map<String, Value>,
    seq: u64,
    events: Vec<Vec<u8>>,
}

impl OrderGen {
    fn event(&mut self, patch: Map<String, Value>) {
        self.seq += 1;
        for (k, v) in &patch {
            self.current.insert(k.clone(), v.clone());
        }
        let minute = self.seq.min(59);
        let value = json!({"event_id": format!("{}-{}", self.no, self.seq), "out_order_no": self.no,
            "occurred_at": format!("2026-11-27T12:{minute:02}:00+08:00"), "seq": self.seq, "patch": patch});
        self.events.push(value.to_string().into_bytes());
    }

    /// An update, sometimes followed by its revert; returns whether it was reverted.
    fn update(&mut self, rng: &mut StdRng, revert_rate: f64) -> bool {
        let patch = if rng.gen_bool(0.65) {
            dish_change(rng)
        } else {
            table_change(rng)
        };
        let before: Map<String, Value> = patch
            .keys()
            .map(|k| {
                (
                    k.clone(),
                    self.current.get(k).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        let changes = patch.iter().any(|(k, v)| self.current.get(k) != Some(v));
        self.event(patch);
        if changes && rng.gen_bool(revert_rate) {
            self.event(before);
            return true;
        }
        false
    }
}

/// Generates the stream of `spec`.
pub fn generate(spec: &Spec) -> Stream {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut stream = Stream {
        records: Vec::new(),
        orders: Vec::new(),
        bad: Vec::new(),
        updates: 0,
        reverts: 0,
        after_payment: 0,
        redeliveries: 0,
    };
    // Per order: its records (values), and for each the index of the payment (if any).
    let mut per_order: Vec<(String, Vec<Vec<u8>>, Option<usize>)> = Vec::new();
    for i in 0..spec.orders {
        let no = format!("{}{i:06}", spec.tag);
        let mut o = OrderGen {
            no: no.clone(),
            current: Map::new(),
            seq: 0,
            events: Vec::new(),
        };
        let (dishes, total) = dish_list(&mut rng);
        let mut create = json!({
            "sub_mchid": "1900000109", "out_shop_no": format!("SHOP-{:03}", i % 37),
            "login_token": format!("chaos-session-key-{i}"), "order_entry": "pages/menu/index",
            "total_amount": total, "discount_amount": 0, "user_amount": total,
            "status": "CREATE_DEAL", "out_table_no": format!("A{:02}", i % 40),
            "people_count": rng.gen_range(1..=6), "dish_list": dishes,
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
        let pay = json!({"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:45:00+08:00",
            "transaction_id": format!("42000020261127{i:014}"), "out_trade_no": format!("P{no}")});
        let mut paid_at = None;
        if rng.gen_bool(0.05) {
            // Starts paid: one event with everything.
            let mut m = create.as_object().unwrap().clone();
            m.extend(pay.as_object().unwrap().clone());
            o.event(m);
            paid_at = Some(0);
        } else {
            o.event(create.as_object().unwrap().clone());
            for _ in 0..rng.gen_range(1..=4) {
                stream.updates += 1;
                stream.reverts += usize::from(o.update(&mut rng, 0.3));
            }
            if rng.gen_bool(0.9) {
                o.event(pay.as_object().unwrap().clone());
                paid_at = Some(o.events.len() - 1);
            }
        }
        if paid_at.is_some() && rng.gen_bool(0.25) {
            for _ in 0..rng.gen_range(1..=2) {
                stream.after_payment += 1;
                stream.reverts += usize::from(o.update(&mut rng, 0.2));
            }
        }
        stream.orders.push(no.clone());
        per_order.push((no, o.events, paid_at));
    }

    // Bad records, placed in chosen orders (after the create; regressions after the payment).
    let mut unkeyed: Vec<Vec<u8>> = Vec::new();
    for j in 0..spec.bad_per_kind {
        for kind in 0..7 {
            if kind == 5 {
                let value = json!({"event_id": format!("nokey-{}-{j}", spec.tag),
                    "out_order_no": format!("NOKEY-{}-{j}", spec.tag),
                    "occurred_at": "2026-11-27T12:00:00+08:00", "patch": {"out_table_no": "Z1"}})
                .to_string()
                .into_bytes();
                stream.bad.push((None, value.clone(), "invalid_event"));
                unkeyed.push(value);
                continue;
            }
            let candidates: Vec<usize> = (0..per_order.len())
                .filter(|&i| kind != 6 || per_order[i].2.is_some())
                .collect();
            let Some(&i) = candidates.choose(&mut rng) else {
                continue;
            };
            let (no, events, paid_at) = &mut per_order[i];
            let id = format!("{no}-bad{kind}-{j}");
            let (value, reason): (Vec<u8>, &'static str) = match kind {
                0 => (format!("{{\"event_id\": \"{id}\", \"out_order_no\": ").into_bytes(), "malformed"),
                1 => (json!(["not", "an", "object", id]).to_string().into_bytes(), "malformed"),
                2 => (json!({"event_id": id, "out_order_no": no, "occurred_at": "2026-11-27T12:00:00+08:00",
                        "patch": {"table_colour": "red"}}).to_string().into_bytes(), "invalid_event"),
                3 => (json!({"out_order_no": no, "occurred_at": "2026-11-27T12:00:00+08:00",
                        "patch": {"out_table_no": id}}).to_string().into_bytes(), "invalid_event"),
                4 => (json!({"event_id": id, "out_order_no": no, "occurred_at": "2026-11-27T12:00:00+08:00",
                        "patch": {"out_shop_no": null}}).to_string().into_bytes(), "invalid_snapshot"),
                _ => (json!({"event_id": id, "out_order_no": no, "occurred_at": "2026-11-27T13:00:00+08:00",
                        "patch": {"status": "CREATE_DEAL"}}).to_string().into_bytes(), "status_regression"),
            };
            let lo = match kind {
                6 => paid_at.unwrap() + 1,
                _ => 1,
            };
            let at = rng.gen_range(lo..=events.len());
            events.insert(at, value.clone());
            if let Some(p) = paid_at.as_mut() {
                if at <= *p {
                    *p += 1;
                }
            }
            stream.bad.push((Some(no.clone()), value, reason));
        }
    }

    // Interleave: a window of orders in flight; redeliveries come back 1..300 records later.
    let mut order_queue: std::collections::VecDeque<(String, std::vec::IntoIter<Vec<u8>>)> =
        per_order
            .into_iter()
            .map(|(no, ev, _)| (no, ev.into_iter()))
            .collect();
    let mut active: Vec<(String, std::vec::IntoIter<Vec<u8>>)> = Vec::new();
    let mut delayed: Vec<(usize, String, Vec<u8>)> = Vec::new();
    let bad_values: std::collections::HashSet<Vec<u8>> =
        stream.bad.iter().map(|b| b.1.clone()).collect();
    let mut unkeyed = unkeyed.into_iter();
    loop {
        while active.len() < spec.window.max(1) {
            match order_queue.pop_front() {
                Some(o) => active.push(o),
                None => break,
            }
        }
        let pos = stream.records.len();
        if let Some(d) = delayed.iter().position(|(due, _, _)| *due <= pos) {
            let (_, no, value) = delayed.swap_remove(d);
            stream.records.push(Outgoing::keyed(no, value));
            continue;
        }
        if active.is_empty() {
            if let Some((_, no, value)) = delayed.pop() {
                stream.records.push(Outgoing::keyed(no, value));
                continue;
            }
            break;
        }
        if rng.gen_bool(0.002) {
            if let Some(v) = unkeyed.next() {
                stream.records.push(Outgoing {
                    value: Some(v),
                    ..Outgoing::default()
                });
                continue;
            }
        }
        let a = rng.gen_range(0..active.len());
        match active[a].1.next() {
            Some(value) => {
                let no = active[a].0.clone();
                if !bad_values.contains(&value) && rng.gen_bool(spec.redelivery_rate) {
                    stream.redeliveries += 1;
                    delayed.push((pos + rng.gen_range(1..300), no.clone(), value.clone()));
                }
                stream.records.push(Outgoing::keyed(no, value));
            }
            None => {
                active.swap_remove(a);
            }
        }
    }
    for v in unkeyed {
        stream.records.push(Outgoing {
            value: Some(v),
            ..Outgoing::default()
        });
    }
    stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history;
    use std::collections::BTreeMap;

    #[test]
    fn the_generator_is_seeded_and_its_bad_records_are_what_it_says() {
        let spec = Spec::new("G", 400, 7);
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.records, b.records, "same seed, same stream");
        assert_ne!(generate(&Spec::new("G", 400, 8)).records, a.records);
        println!("{}", a.summary());
        assert!(
            a.reverts > 20 && a.after_payment > 20 && a.redeliveries > 50,
            "{}",
            a.summary()
        );
        assert_eq!(a.bad.len(), 14);

        // Per order, in produce order: what the pure core rejects is exactly the bad records.
        let mut per: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut unkeyed = 0;
        for r in &a.records {
            match &r.key {
                Some(k) => per
                    .entry(String::from_utf8(k.clone()).unwrap())
                    .or_default()
                    .push(r.value.clone().unwrap()),
                None => unkeyed += 1,
            }
        }
        assert_eq!(unkeyed, 2);
        assert_eq!(per.len(), 400);
        let mut rejected = Vec::new();
        let mut statuses = BTreeMap::new();
        for (no, values) in &per {
            let exp = history::expected(values);
            for (v, reason) in exp.bad {
                rejected.push((Some(no.clone()), v, reason));
            }
            // Every order ends with a status (it is posted); reverts give repeated bodies.
            let last = exp.statuses.last().unwrap().clone();
            assert!(last.is_some(), "{no}");
            *statuses.entry(last.unwrap()).or_insert(0) += 1;
        }
        let mut claimed: Vec<_> = a.bad.iter().filter(|b| b.0.is_some()).cloned().collect();
        claimed.sort();
        rejected.sort();
        assert_eq!(claimed, rejected);
        assert!(
            statuses["PAY_SUCCESS"] > 300 && statuses["CREATE_DEAL"] > 10,
            "{statuses:?}"
        );

        // Many orders in flight at once: the first 200 records touch more than 40 orders.
        let early: std::collections::BTreeSet<_> = a.records[..200]
            .iter()
            .filter_map(|r| r.key.clone())
            .collect();
        assert!(early.len() > 40, "{}", early.len());
    }
}
