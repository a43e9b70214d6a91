//! Tests: the service-provider and channel variants and their required fields, the dish list cap.

use super::*;

#[test]
fn variant_rules() {
    run(&[
        case(
            "both variants",
            sp,
            |b| set(b, "channel_id", json!("CH000001")),
            &[("", R::Variant)],
        ),
        draft(
            "both variants in draft",
            ch,
            |b| set(b, "sp_appid", json!("wx8888888888888888")),
            &[("", R::Variant)],
        ),
        case(
            "both variants, status missing",
            ch,
            |b| {
                set(b, "sp_mchid", json!("1900000100"));
                del(b, "status");
            },
            &[("", R::Variant), ("status", R::Required)],
        ),
        case(
            "neither variant",
            sp,
            |b| {
                del(b, "sp_mchid");
                del(b, "sp_appid");
            },
            &[("", R::Variant)],
        ),
        draft(
            "neither variant in draft",
            sp,
            |b| {
                del(b, "sp_mchid");
                del(b, "sp_appid");
            },
            &[],
        ),
        case(
            "channel with openid",
            ch,
            |b| set(b, "openid", json!("oUpF8uMuAJO")),
            &[("openid", R::NotAllowed)],
        ),
        draft(
            "channel with openid in draft",
            ch,
            |b| set(b, "openid", json!("oUpF8uMuAJO")),
            &[("openid", R::NotAllowed)],
        ),
        case(
            "sp without openid",
            sp,
            |b| del(b, "openid"),
            &[("openid", R::Required)],
        ),
        case(
            "sp with both openids",
            sp,
            |b| {
                set(b, "sub_appid", json!("wx1234567890abcdef"));
                set(b, "sub_openid", json!("oXyz8uMuAJO"));
            },
            &[("sub_openid", R::NotAllowed)],
        ),
        draft(
            "sp with both openids in draft",
            sp,
            |b| {
                set(b, "sub_appid", json!("wx1234567890abcdef"));
                set(b, "sub_openid", json!("oXyz8uMuAJO"));
            },
            &[],
        ),
        case(
            "sp sub_openid without sub_appid",
            sp,
            |b| {
                del(b, "openid");
                set(b, "sub_openid", json!("oXyz8uMuAJO"));
            },
            &[("sub_appid", R::Required)],
        ),
        case(
            "channel without sub_openid",
            ch,
            |b| del(b, "sub_openid"),
            &[("sub_openid", R::Required)],
        ),
    ]);
}

const SP_REQUIRED: &[&str] = &[
    "sp_mchid",
    "sp_appid",
    "sub_mchid",
    "openid",
    "out_shop_no",
    "login_token",
    "order_entry",
    "total_amount",
    "discount_amount",
    "user_amount",
    "status",
    "action_time",
    "pay_time",
    "transaction_id",
    "out_trade_no",
    "out_order_no",
    "dish_list",
];
const CH_REQUIRED: &[&str] = &[
    "sub_mchid",
    "sub_appid",
    "sub_openid",
    "out_shop_no",
    "login_token",
    "order_entry",
    "total_amount",
    "discount_amount",
    "user_amount",
    "status",
    "action_time",
    "out_order_no",
    "dish_list",
];

fn removal(base: fn() -> Body, key: &str, mode: Mode) -> Vec<(String, Rule)> {
    let mut b = base();
    assert!(b.remove(key).is_some(), "{key} not in base body");
    summary(&validate_object(&b, mode))
}

#[test]
fn required_fields_per_variant() {
    for (base, required) in [(sp as fn() -> Body, SP_REQUIRED), (ch, CH_REQUIRED)] {
        for key in required {
            let want = vec![((*key).to_owned(), R::Required)];
            assert_eq!(removal(base, key, Mode::Full), want, "{key}");
            assert_eq!(removal(base, key, Mode::FieldsOnly), vec![], "{key}");
        }
    }
    for key in ["out_table_no", "people_count"] {
        assert_eq!(removal(sp, key, Mode::Full), vec![], "{key}");
    }
    assert_eq!(
        removal(ch, "channel_id", Mode::Full),
        vec![(String::new(), R::Variant)]
    );
    assert_eq!(removal(ch, "channel_id", Mode::FieldsOnly), vec![]);
}

#[test]
fn pay_success_requires_payment_fields() {
    let mut b = ch();
    set(&mut b, "status", json!("PAY_SUCCESS"));
    let got = validate_object(&b, Mode::Full);
    let want: Vec<(String, Rule)> = ["pay_time", "transaction_id", "out_trade_no"]
        .iter()
        .map(|k| ((*k).to_owned(), R::Required))
        .collect();
    assert_eq!(summary(&got), want);
    assert!(got.iter().all(|v| v.message.contains("PAY_SUCCESS")));
    assert_eq!(validate_object(&b, Mode::FieldsOnly), vec![]);
}

#[test]
fn dish_and_property_required_fields() {
    for key in DISH_REQUIRED {
        let mut b = sp();
        del(dish_mut(&mut b, 3), key);
        let want = vec![(format!("dish_list[3].{key}"), R::Required)];
        assert_eq!(summary(&validate_object(&b, Mode::Full)), want);
        assert_eq!(validate_object(&b, Mode::FieldsOnly), vec![]);
    }
    for key in PROPERTY_REQUIRED {
        let mut b = sp();
        del(props_mut(&mut b), key);
        let want = vec![(format!("dish_list[0].properties.{key}"), R::Required)];
        assert_eq!(summary(&validate_object(&b, Mode::Full)), want);
        assert_eq!(validate_object(&b, Mode::FieldsOnly), vec![]);
    }
}

fn long_list(len: usize) -> Body {
    let mut b = sp();
    let mut list: Vec<Value> = (0..len)
        .map(|i| dish(&format!("D{i}"), "米饭", 200, "BY_SHARE", json!(1)))
        .collect();
    list[len - 2]["name"] = json!("🍚");
    list[len - 1]["price"] = json!("200");
    set(&mut b, "dish_list", Value::Array(list));
    b
}

#[test]
fn dish_list_cap() {
    let got = validate_object(&long_list(MAX_DISHES + 1), Mode::Full);
    let want = vec![
        ("dish_list".to_owned(), R::Range),
        ("dish_list[999].name".to_owned(), R::FourByteUtf8),
    ];
    assert_eq!(summary(&got), want);
    assert_eq!(
        got[0].message,
        "has 1001 items, max 1000 (only the first 1000 are checked)"
    );
    let at_cap = summary(&validate_object(&long_list(MAX_DISHES), Mode::Full));
    let want = vec![
        ("dish_list[998].name".to_owned(), R::FourByteUtf8),
        ("dish_list[999].price".to_owned(), R::Type),
    ];
    assert_eq!(at_cap, want);
}
