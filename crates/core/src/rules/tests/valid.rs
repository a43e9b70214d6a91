//! Tests: valid bodies and the body as a whole.

use super::*;

#[test]
fn valid_bodies_pass() {
    run(&[
        case("service provider", sp, keep, &[]),
        case("channel", ch, keep, &[]),
        draft("service provider, fields only", sp, keep, &[]),
        draft("channel, fields only", ch, keep, &[]),
        case(
            "sp with sub_appid and sub_openid",
            sp,
            |b| {
                del(b, "openid");
                set(b, "sub_appid", json!("wx1234567890abcdef"));
                set(b, "sub_openid", json!("oXyz8uMuAJO_M2pxb1Q9zNjWeS6o"));
            },
            &[],
        ),
        case(
            "sp with sub_appid but openid",
            sp,
            |b| {
                set(b, "sub_appid", json!("wx1234567890abcdef"));
            },
            &[],
        ),
        case(
            "channel paid",
            ch,
            |b| {
                set(b, "status", json!("PAY_SUCCESS"));
                set(b, "pay_time", json!("2024-06-08T02:40:00.123Z"));
                set(b, "transaction_id", json!("4200000000202406081234567891"));
                set(b, "out_trade_no", json!("PAY20240608000124"));
            },
            &[],
        ),
        case(
            "empty dish_list",
            sp,
            |b| set(b, "dish_list", json!([])),
            &[],
        ),
        case(
            "properties without others",
            sp,
            |b| del(props_mut(b), "others"),
            &[],
        ),
        case(
            "only required dish fields",
            sp,
            |b| del(dish_mut(b, 0), "properties"),
            &[],
        ),
        case(
            "official misspelling",
            sp,
            |b| set_dish(b, 2, "type", json!("GUAGNDONG_CUISINE")),
            &[],
        ),
        case(
            "create deal without pay fields",
            sp,
            |b| {
                set(b, "status", json!("CREATE_DEAL"));
                for k in ["pay_time", "transaction_id", "out_trade_no"] {
                    del(b, k);
                }
            },
            &[],
        ),
        case(
            "amount at the bound",
            sp,
            |b| set(b, "total_amount", json!(MAX_AMOUNT)),
            &[],
        ),
        case(
            "ten CJK chars fit 32 bytes",
            sp,
            |b| set(b, "sub_mchid", json!("宫".repeat(10))),
            &[],
        ),
        case(
            "limits of discount and priority",
            sp,
            |b| {
                set_dish(b, 1, "discount", json!(0));
                set_dish(b, 2, "discount", json!(100));
                set_dish(b, 1, "priority", json!(100));
            },
            &[],
        ),
        case(
            "count with two decimals",
            sp,
            |b| set_dish(b, 4, "count", json!(1.25)),
            &[],
        ),
        case(
            "count 0.01",
            sp,
            |b| set_dish(b, 4, "count", json!(0.01)),
            &[],
        ),
        case(
            "count above MAX_COUNT (integer)",
            sp,
            |b| set_dish(b, 4, "count", json!(u64::MAX)),
            &[("dish_list[4].count", Rule::Range)],
        ),
        case(
            "count above MAX_COUNT (float)",
            sp,
            |b| set_dish(b, 4, "count", json!(1e21)),
            &[("dish_list[4].count", Rule::Range)],
        ),
        case(
            "3-byte chars are fine",
            sp,
            |b| set(b, "out_table_no", json!("大厅€")),
            &[],
        ),
    ]);
}

#[test]
fn non_object_body_is_a_type_error() {
    for v in [json!(null), json!([]), json!("x"), json!(1), json!(true)] {
        let got = summary(&validate(&v, Mode::Full));
        assert_eq!(got, vec![(String::new(), R::Type)], "{v}");
        assert_eq!(summary(&validate(&v, Mode::FieldsOnly)), got);
    }
    assert_eq!(validate(&Value::Object(sp()), Mode::Full), vec![]);
    let v = &validate(&json!([1]), Mode::Full)[0];
    assert_eq!(v.message, "must be a JSON object, got an array");
}
