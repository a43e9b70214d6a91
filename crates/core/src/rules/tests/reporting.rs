//! Tests: violation order, drafts, messages, rule codes, detection helpers, field lists, decimals.

use super::*;

fn many_faults(b: &mut Body) {
    set(b, "channel_id", json!("CH000001"));
    set(b, "sp_mchid", json!("1".repeat(33)));
    set(b, "total_amount", json!("8800"));
    set(b, "pay_time", json!("soon"));
    del(b, "transaction_id");
    set(b, "foo", json!("bar"));
    set_dish(b, 1, "name", json!("🍜"));
    set_dish(b, 4, "count", json!(1.255));
    del(props_mut(b), "taste");
    set_dish(b, 2, "unit", json!("BOWL"));
    set_dish(b, 3, "spicy", json!(true));
}

#[test]
fn several_violations_reported_in_order() {
    run(&[case(
        "many faults",
        sp,
        many_faults,
        &[
            ("", R::Variant),
            ("sp_mchid", R::MaxLength),
            ("total_amount", R::Type),
            ("pay_time", R::Format),
            ("transaction_id", R::Required),
            ("dish_list[0].properties.taste", R::Required),
            ("dish_list[1].name", R::FourByteUtf8),
            ("dish_list[2].unit", R::Enum),
            ("dish_list[3].spicy", R::UnknownField),
            ("dish_list[4].count", R::Decimals),
            ("foo", R::UnknownField),
        ],
    )]);
}

#[test]
fn draft_without_status() {
    let b = obj(json!({
        "sub_mchid": "1900000109", "out_shop_no": "shop-0001", "total_amount": "8800",
        "dish_list": [{"name": "宫保鸡丁"}]
    }));
    let got = summary(&validate_object(&b, Mode::FieldsOnly));
    assert_eq!(got, vec![("total_amount".to_owned(), R::Type)]);
    let full = summary(&validate_object(&b, Mode::Full));
    let want: Vec<(String, Rule)> = [
        ("", R::Variant),
        ("login_token", R::Required),
        ("order_entry", R::Required),
        ("total_amount", R::Type),
        ("discount_amount", R::Required),
        ("user_amount", R::Required),
        ("status", R::Required),
        ("action_time", R::Required),
        ("out_order_no", R::Required),
        ("dish_list[0].out_dish_no", R::Required),
        ("dish_list[0].price", R::Required),
        ("dish_list[0].unit", R::Required),
        ("dish_list[0].count", R::Required),
    ]
    .iter()
    .map(|(p, r)| ((*p).to_owned(), *r))
    .collect();
    assert_eq!(full, want);
}

#[test]
fn messages_never_echo_values() {
    let token = format!("TOPSECRET{}🔑", "x".repeat(250));
    let mut b = sp();
    set(&mut b, "login_token", json!(token));
    let got = validate_object(&b, Mode::Full);
    assert_eq!(
        summary(&got),
        vec![
            ("login_token".to_owned(), R::FourByteUtf8),
            ("login_token".to_owned(), R::MaxLength)
        ]
    );
    assert_eq!(got[1].message, "is 263 bytes, max 256");
    for v in &got {
        assert!(!v.message.contains("TOPSECRET") && !v.to_string().contains("TOPSECRET"));
    }
    let mut b = sp();
    many_faults(&mut b);
    let values = ["1111111111", "8800", "soon", "🍜", "1.255", "BOWL", "bar"];
    for v in validate_object(&b, Mode::Full) {
        assert!(values.iter().all(|x| !v.message.contains(x)), "{v}");
    }
}

fn first(base: fn() -> Body, edit: fn(&mut Body)) -> Violation {
    let mut b = base();
    edit(&mut b);
    validate_object(&b, Mode::Full).remove(0)
}

#[test]
fn messages_and_display() {
    let v = first(sp, |b| set(b, "sp_mchid", json!("1".repeat(33))));
    assert_eq!(v.to_string(), "sp_mchid: is 33 bytes, max 32 (max_length)");
    let v = first(sp, |b| set(b, "channel_id", json!("CH1")));
    assert!(
        v.to_string().starts_with("body: has both channel_id"),
        "{v}"
    );
    assert!(v.to_string().ends_with("(variant)"), "{v}");
    let v = first(sp, |b| del(b, "openid"));
    assert_eq!(v.message, "one of openid or sub_openid is required");
    let v = first(sp, |b| {
        set(b, "sub_appid", json!("wx1"));
        set(b, "sub_openid", json!("o1"));
    });
    assert_eq!(
        v.to_string(),
        "sub_openid: openid and sub_openid are mutually exclusive (not_allowed)"
    );
    let v = first(sp, |b| set(b, "total_amount", json!("8800")));
    assert_eq!(
        v.to_string(),
        "total_amount: must be an integer, got a string (type)"
    );
    let v = first(sp, |b| set(b, "status", json!("PAID")));
    assert_eq!(v.message, "is not one of CREATE_DEAL, PAY_SUCCESS");
    let v = first(sp, |b| set_dish(b, 0, "type", json!("X")));
    assert_eq!(v.message, "is not one of the 24 documented values");
    let v = first(sp, |b| set_dish(b, 4, "count", json!(1.255)));
    assert_eq!(v.message, "has 3 decimal places, max 2");
    let v = first(sp, |b| set_dish(b, 0, "discount", json!(101)));
    assert_eq!(v.message, "is above the maximum 100");
}

#[test]
fn rule_codes() {
    let table = [
        (R::Required, "required"),
        (R::NotAllowed, "not_allowed"),
        (R::Type, "type"),
        (R::Null, "null"),
        (R::UnknownField, "unknown_field"),
        (R::MaxLength, "max_length"),
        (R::Empty, "empty"),
        (R::FourByteUtf8, "four_byte_utf8"),
        (R::Enum, "enum"),
        (R::Format, "format"),
        (R::Range, "range"),
        (R::Decimals, "decimals"),
        (R::Variant, "variant"),
    ];
    for (rule, code) in table {
        assert_eq!(rule.as_str(), code);
        assert_eq!(rule.to_string(), code);
    }
}

#[test]
fn variant_detection() {
    let table = [
        (json!({"sp_mchid": "1"}), Some(Variant::ServiceProvider)),
        (json!({"sp_appid": "wx"}), Some(Variant::ServiceProvider)),
        (json!({"channel_id": "c"}), Some(Variant::Channel)),
        (
            json!({"channel_id": "c", "sp_mchid": null}),
            Some(Variant::Channel),
        ),
        (json!({"channel_id": "c", "sp_appid": "wx"}), None),
        (json!({"sub_mchid": "1"}), None),
        (json!({"channel_id": null}), None),
    ];
    for (body, want) in table {
        assert_eq!(variant_of(&obj(body.clone())), want, "{body}");
    }
    assert_eq!(variant_of(&sp()), Some(Variant::ServiceProvider));
    assert_eq!(variant_of(&ch()), Some(Variant::Channel));
}

#[test]
fn amount_mismatch_detection() {
    assert!(!amount_mismatch(&sp()));
    let table = [
        (
            json!({"total_amount": 100, "discount_amount": 10, "user_amount": 90}),
            false,
        ),
        (
            json!({"total_amount": 100, "discount_amount": 10, "user_amount": 91}),
            true,
        ),
        (
            json!({"total_amount": "100", "discount_amount": 10, "user_amount": 91}),
            false,
        ),
        (
            json!({"total_amount": 100.0, "discount_amount": 10, "user_amount": 91}),
            false,
        ),
        (json!({"total_amount": 100, "user_amount": 91}), false),
        (
            json!({"total_amount": i64::MAX, "discount_amount": i64::MIN, "user_amount": -1}),
            true,
        ),
    ];
    for (body, want) in table {
        assert_eq!(amount_mismatch(&obj(body.clone())), want, "{body}");
    }
}

#[test]
fn field_lists_match_specs() {
    let kinds = |shape: &Shape| {
        let kinds = shape
            .fields
            .iter()
            .map(|f| format!("{:?}", (shape.kind)(f)));
        shape
            .fields
            .iter()
            .zip(kinds)
            .map(|(f, k)| format!("{f}: {k}"))
            .collect::<Vec<_>>()
    };
    let body = kinds(&BODY).join(", ");
    assert!(body.starts_with("sp_mchid: Str(32), sp_appid: Str(32), channel_id: Str(32), sub_mchid: Str(32), sub_appid: Str(32), openid: Str(32), sub_openid: Str(32), out_shop_no: Str(32), login_token: Str(256), order_entry: Str(256), total_amount: Int(0, 2147483647)"), "{body}");
    assert!(body.ends_with("transaction_id: Str(64), out_trade_no: Str(64), out_order_no: Str(64), out_table_no: Str(16), people_count: Int(1, 2147483647), dish_list: Dishes"), "{body}");
    let dish = kinds(&DISH).join(", ");
    assert!(
        dish.starts_with(
            "out_dish_no: Str(48), name: Str(128), price: Int(0, 2147483647), unit: Enum(16, "
        ),
        "{dish}"
    );
    assert!(dish.ends_with("count: Count, discount: Int(0, 100), type: Enum(32, [\"FAST_FOOD\", \"DRINK\", \"YOYO\", \"BEIJING_CUISINE\", \"SICHUAN_CUISINE\", \"DONGBEI_CUISINE\", \"SOUTHEAST_ASIAN_CUISINE\", \"SEAFOOD\", \"KOREAN_CUISINE\", \"HUBEI_CUISINE\", \"HOT_POT\", \"JIANGZHE_CUISINE\", \"SHANDONG_CUISINE\", \"HALAL_FOOD\", \"JAPANESE_CUISINE\", \"BARBECUE\", \"NORTHWEST_CUISINE\", \"WESTERN_FOOD\", \"HUNAN_CUISINE\", \"SNACK\", \"XINJIANG_CUISINE\", \"GUAGNDONG_CUISINE\", \"YUNNAN_CUISINE\", \"BUFFET\"]), priority: Int(1, 100), properties: Props"), "{dish}");
    assert!(kinds(&PROPERTIES).iter().all(|k| k.ends_with(": Str(128)")));
    assert_eq!(BODY_FIELDS.len(), 22);
    assert_eq!(DISH_TYPES.len(), 24);
    assert!(DISH_TYPES.contains(&"GUAGNDONG_CUISINE"));
    assert_eq!(STATUSES, ["CREATE_DEAL", "PAY_SUCCESS"]);
    for list in [BODY_FIELDS, DISH_FIELDS, PROPERTY_FIELDS, DISH_TYPES] {
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), list.len());
    }
    let known = |req: &[&str], all: &[&str]| req.iter().all(|k| all.contains(k));
    assert!(known(COMMON_REQUIRED, BODY_FIELDS));
    assert!(known(DISH_REQUIRED, DISH_FIELDS));
    assert!(known(PROPERTY_REQUIRED, PROPERTY_FIELDS));
}

#[test]
fn decimal_parsing() {
    let table: &[(&str, bool, u64)] = &[
        ("1", true, 0),
        ("0", false, 0),
        ("-0.0", false, 0),
        ("0.000", false, 0),
        ("1.5", true, 1),
        ("1.50", true, 1),
        ("1.25", true, 2),
        ("1.255", true, 3),
        ("-1.255", false, 3),
        ("1e-3", true, 3),
        ("1.2e-6", true, 7),
        ("1.5e+300", true, 0),
        ("1.2345678901234568e+16", true, 0),
        ("100e-2", true, 0),
        ("120E-2", true, 1),
        ("12e3", true, 0),
        ("1e-99999999999999999999", true, i64::MAX.unsigned_abs()),
    ];
    for (text, positive, places) in table {
        let want = Decimal {
            positive: *positive,
            places: *places,
        };
        assert_eq!(Decimal::parse(text), Some(want), "{text}");
    }
    for bad in [
        "", "-", ".", "abc", "1e", "1e+", "1.2.3", "1x", "--1", "1e5.0",
    ] {
        assert_eq!(Decimal::parse(bad), None, "{bad:?}");
    }
}
