//! Tests: enumerations, times and numeric ranges.

use super::*;

#[test]
fn enums_and_formats() {
    run(&[
        case(
            "unknown status",
            sp,
            |b| set(b, "status", json!("PAID")),
            &[("status", R::Enum)],
        ),
        case(
            "lower-case status",
            ch,
            |b| set(b, "status", json!("create_deal")),
            &[("status", R::Enum)],
        ),
        case(
            "long unknown status",
            ch,
            |b| set(b, "status", json!("X".repeat(33))),
            &[("status", R::MaxLength), ("status", R::Enum)],
        ),
        case(
            "unknown unit",
            sp,
            |b| set_dish(b, 2, "unit", json!("BY_PIECE")),
            &[("dish_list[2].unit", R::Enum)],
        ),
        case(
            "correctly spelt type",
            sp,
            |b| set_dish(b, 2, "type", json!("GUANGDONG_CUISINE")),
            &[("dish_list[2].type", R::Enum)],
        ),
        case(
            "space instead of T",
            sp,
            |b| set(b, "action_time", json!("2024-06-08 10:34:56+08:00")),
            &[("action_time", R::Format)],
        ),
        case(
            "lower-case t and z",
            ch,
            |b| set(b, "action_time", json!("2024-06-08t02:34:56z")),
            &[("action_time", R::Format)],
        ),
        case(
            "lower-case z",
            ch,
            |b| set(b, "action_time", json!("2024-06-08T02:34:56z")),
            &[("action_time", R::Format)],
        ),
        case(
            "offset without colon",
            ch,
            |b| set(b, "action_time", json!("2024-06-08T10:34:56+0800")),
            &[("action_time", R::Format)],
        ),
        case(
            "no offset",
            sp,
            |b| set(b, "pay_time", json!("2024-06-08T10:34:56")),
            &[("pay_time", R::Format)],
        ),
        case(
            "month 13",
            ch,
            |b| set(b, "action_time", json!("2024-13-01T00:00:00+08:00")),
            &[("action_time", R::Format)],
        ),
        case(
            "unix seconds as text",
            ch,
            |b| set(b, "action_time", json!("1717814096")),
            &[("action_time", R::Format)],
        ),
        case(
            "65-byte time",
            sp,
            |b| set(b, "action_time", json!("2".repeat(65))),
            &[("action_time", R::MaxLength), ("action_time", R::Format)],
        ),
        draft(
            "format in draft",
            ch,
            |b| set(b, "action_time", json!("yesterday")),
            &[("action_time", R::Format)],
        ),
    ]);
}

#[test]
fn numeric_ranges() {
    run(&[
        case(
            "negative amount",
            sp,
            |b| set(b, "discount_amount", json!(-1)),
            &[("discount_amount", R::Range)],
        ),
        case(
            "amount above bound",
            sp,
            |b| set(b, "total_amount", json!(MAX_AMOUNT + 1)),
            &[("total_amount", R::Range)],
        ),
        case(
            "amount above i64",
            sp,
            |b| set(b, "user_amount", json!(u64::MAX)),
            &[("user_amount", R::Range)],
        ),
        case(
            "price above bound",
            sp,
            |b| set_dish(b, 1, "price", json!(MAX_AMOUNT + 1)),
            &[("dish_list[1].price", R::Range)],
        ),
        case(
            "negative price",
            sp,
            |b| set_dish(b, 1, "price", json!(-3600)),
            &[("dish_list[1].price", R::Range)],
        ),
        case(
            "people_count 0",
            sp,
            |b| set(b, "people_count", json!(0)),
            &[("people_count", R::Range)],
        ),
        case(
            "people_count huge",
            sp,
            |b| set(b, "people_count", json!(1_u64 << 31)),
            &[("people_count", R::Range)],
        ),
        case(
            "discount 101",
            sp,
            |b| set_dish(b, 0, "discount", json!(101)),
            &[("dish_list[0].discount", R::Range)],
        ),
        case(
            "discount -1",
            sp,
            |b| set_dish(b, 0, "discount", json!(-1)),
            &[("dish_list[0].discount", R::Range)],
        ),
        case(
            "priority 0",
            sp,
            |b| set_dish(b, 0, "priority", json!(0)),
            &[("dish_list[0].priority", R::Range)],
        ),
        case(
            "priority 101",
            sp,
            |b| set_dish(b, 0, "priority", json!(101)),
            &[("dish_list[0].priority", R::Range)],
        ),
        case(
            "count 0",
            sp,
            |b| set_dish(b, 4, "count", json!(0)),
            &[("dish_list[4].count", R::Range)],
        ),
        case(
            "count 0.0",
            sp,
            |b| set_dish(b, 4, "count", json!(0.0)),
            &[("dish_list[4].count", R::Range)],
        ),
        case(
            "count -1",
            sp,
            |b| set_dish(b, 4, "count", json!(-1)),
            &[("dish_list[4].count", R::Range)],
        ),
        case(
            "count 1.255",
            sp,
            |b| set_dish(b, 4, "count", json!(1.255)),
            &[("dish_list[4].count", R::Decimals)],
        ),
        case(
            "count 1e-3",
            sp,
            |b| set_dish(b, 4, "count", json!(1e-3)),
            &[("dish_list[4].count", R::Decimals)],
        ),
        case(
            "count -1.255",
            sp,
            |b| set_dish(b, 4, "count", json!(-1.255)),
            &[
                ("dish_list[4].count", R::Range),
                ("dish_list[4].count", R::Decimals),
            ],
        ),
        draft(
            "range in draft",
            sp,
            |b| set_dish(b, 0, "priority", json!(0)),
            &[("dish_list[0].priority", R::Range)],
        ),
    ]);
}
