//! The body rules' tests: shared fixtures here, one file per group of rules.

use super::*;
use proptest::prelude::*;
use serde_json::json;

use Rule as R;

type Body = Map<String, Value>;

fn obj(value: Value) -> Body {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn dish(no: &str, name: &str, price: i64, unit: &str, count: Value) -> Value {
    json!({"out_dish_no": no, "name": name, "price": price, "unit": unit, "count": count})
}

fn dishes() -> Value {
    let mut first = dish("D001", "宫保鸡丁", 4800, "BY_SHARE", json!(1));
    let extra = json!({
        "discount": 100, "type": "SICHUAN_CUISINE", "priority": 1,
        "properties": {
            "taste": "麻辣 | 微甜", "cuisine": "川菜", "main_material": "鸡肉",
            "ingredients": "花生 | 干辣椒 | 葱", "others": "招牌菜"
        }
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut first, extra) {
        d.extend(e);
    }
    json!([
        first,
        dish("D002", "鱼香肉丝", 3600, "BY_SHARE", json!(1)),
        dish("D003", "米饭", 200, "BY_SHARE", json!(2)),
        dish("D004", "酸梅汤", 1200, "BY_SHARE", json!(1)),
        dish("D005", "清蒸鲈鱼", 8000, "BY_WEIGHT", json!(1.5)),
    ])
}

/// Service provider, PAY_SUCCESS, openid.
fn sp() -> Body {
    obj(json!({
        "sp_mchid": "1900000100", "sp_appid": "wx8888888888888888",
        "sub_mchid": "1900000109", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "out_shop_no": "shop-0001", "login_token": "SECRET_TOKEN_abcdefghijklmnop",
        "order_entry": "https://order.example.com/shop-0001/menu",
        "total_amount": 22000, "discount_amount": 2000, "user_amount": 20000,
        "status": "PAY_SUCCESS", "action_time": "2024-06-08T10:40:12+08:00",
        "pay_time": "2024-06-08T10:40:10+08:00",
        "transaction_id": "4200000000202406081234567890",
        "out_trade_no": "PAY20240608000123", "out_order_no": "ORD20240608000123",
        "out_table_no": "A12", "people_count": 3, "dish_list": dishes()
    }))
}

/// Channel, CREATE_DEAL.
fn ch() -> Body {
    obj(json!({
        "channel_id": "CH000001", "sub_mchid": "1900000109",
        "sub_appid": "wx1234567890abcdef", "sub_openid": "oXyz8uMuAJO_M2pxb1Q9zNjWeS6o",
        "out_shop_no": "店铺-0001", "login_token": "SESSION_KEY_abcdefghijklmnop==",
        "order_entry": "pages/menu/index?shop=0001",
        "total_amount": 22000, "discount_amount": 2000, "user_amount": 20000,
        "status": "CREATE_DEAL", "action_time": "2024-06-08T02:34:56Z",
        "out_order_no": "ORD20240608000124", "dish_list": dishes()
    }))
}

fn set(b: &mut Body, key: &str, value: Value) {
    b.insert(key.to_owned(), value);
}

fn del(b: &mut Body, key: &str) {
    b.remove(key);
}

fn dish_mut(b: &mut Body, i: usize) -> &mut Body {
    match b.get_mut("dish_list").and_then(|l| l.get_mut(i)) {
        Some(Value::Object(d)) => d,
        _ => panic!("no dish {i}"),
    }
}

fn set_dish(b: &mut Body, i: usize, key: &str, value: Value) {
    set(dish_mut(b, i), key, value);
}

fn props_mut(b: &mut Body) -> &mut Body {
    match dish_mut(b, 0).get_mut("properties") {
        Some(Value::Object(p)) => p,
        _ => panic!("no properties"),
    }
}

fn summary(violations: &[Violation]) -> Vec<(String, Rule)> {
    violations
        .iter()
        .map(|v| (v.path.clone(), v.rule))
        .collect()
}

struct Case {
    name: &'static str,
    base: fn() -> Body,
    edit: fn(&mut Body),
    mode: Mode,
    expect: &'static [(&'static str, Rule)],
}

const fn case(
    name: &'static str,
    base: fn() -> Body,
    edit: fn(&mut Body),
    expect: &'static [(&'static str, Rule)],
) -> Case {
    Case {
        name,
        base,
        edit,
        mode: Mode::Full,
        expect,
    }
}

const fn draft(
    name: &'static str,
    base: fn() -> Body,
    edit: fn(&mut Body),
    expect: &'static [(&'static str, Rule)],
) -> Case {
    Case {
        mode: Mode::FieldsOnly,
        ..case(name, base, edit, expect)
    }
}

fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let mut body = (c.base)();
        (c.edit)(&mut body);
        let got = summary(&validate_object(&body, c.mode));
        let want: Vec<(String, Rule)> = c
            .expect
            .iter()
            .map(|(p, r)| ((*p).to_owned(), *r))
            .collect();
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn keep(_: &mut Body) {}

mod formats;
mod properties;
mod reporting;
mod strings;
mod types;
mod valid;
mod variants;
