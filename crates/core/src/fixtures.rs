//! The one order-fixture factory: deterministic, valid orders as record values, shared by the
//! benchmarks and the tests (`catering_sync::bench` re-exports it).

/// The order number of the `i`-th fixture order.
pub fn order_no(i: usize) -> String {
    format!("2026112712{i:08}")
}

/// One order's two events (a full `CREATE_DEAL`, then `PAY_SUCCESS`) as record values.
pub fn order_events(i: usize, dishes: usize) -> [Vec<u8>; 2] {
    let no = order_no(i);
    const NAMES: [&str; 5] = ["宫保鸡丁", "鱼香肉丝", "麻婆豆腐", "酸梅汤", "米饭"];
    let dish_list: Vec<serde_json::Value> = (0..dishes)
        .map(|d| {
            serde_json::json!({"out_dish_no": format!("D{d:04}"), "name": NAMES[d % 5],
                "price": 1200 + 100 * d as i64, "unit": "BY_SHARE", "count": 1 + d % 3, "type": "SICHUAN_CUISINE"})
        })
        .collect();
    let create = serde_json::json!({"event_id": format!("{no}-1"), "out_order_no": no, "occurred_at": "2026-11-27T12:30:00+08:00", "seq": 1,
        "patch": {"sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
            "openid": format!("oUpF8uMuAJO_M2pxb1Q9z{i:08}"), "out_shop_no": "SHOP-0001", "login_token": format!("SK{i:022}"),
            "order_entry": "pages/menu/index", "total_amount": 9900, "discount_amount": 1100, "user_amount": 8800,
            "status": "CREATE_DEAL", "out_table_no": "A12", "people_count": 3, "dish_list": dish_list}});
    let pay = serde_json::json!({"event_id": format!("{no}-2"), "out_order_no": no, "occurred_at": "2026-11-27T12:40:01+08:00", "seq": 2,
        "patch": {"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:40:01+08:00",
            "transaction_id": format!("42000020261127{i:014}"), "out_trade_no": format!("P{no}")}});
    [
        create.to_string().into_bytes(),
        pay.to_string().into_bytes(),
    ]
}
