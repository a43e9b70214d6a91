//! Tests: JSON types, nulls and unknown fields.

use super::*;

#[test]
fn wrong_types() {
    run(&[
        case(
            "amount as string",
            sp,
            |b| set(b, "total_amount", json!("8800")),
            &[("total_amount", R::Type)],
        ),
        case(
            "string as number",
            sp,
            |b| set(b, "sp_mchid", json!(1900000100)),
            &[("sp_mchid", R::Type)],
        ),
        case(
            "bool as string",
            sp,
            |b| set(b, "out_table_no", json!(true)),
            &[("out_table_no", R::Type)],
        ),
        case(
            "float amount",
            sp,
            |b| set(b, "user_amount", json!(100.5)),
            &[("user_amount", R::Type)],
        ),
        case(
            "integral float amount",
            sp,
            |b| set(b, "discount_amount", json!(100.0)),
            &[("discount_amount", R::Type)],
        ),
        case(
            "float people_count",
            sp,
            |b| set(b, "people_count", json!(2.0)),
            &[("people_count", R::Type)],
        ),
        case(
            "status array",
            sp,
            |b| set(b, "status", json!(["PAY_SUCCESS"])),
            &[("status", R::Type)],
        ),
        case(
            "time as number",
            sp,
            |b| set(b, "action_time", json!(1717814096)),
            &[("action_time", R::Type)],
        ),
        case(
            "dish_list object",
            sp,
            |b| set(b, "dish_list", json!({})),
            &[("dish_list", R::Type)],
        ),
        case(
            "dish item string",
            sp,
            |b| set(b, "dish_list", json!(["宫保鸡丁"])),
            &[("dish_list[0]", R::Type)],
        ),
        case(
            "properties array",
            sp,
            |b| set_dish(b, 0, "properties", json!(["麻辣"])),
            &[("dish_list[0].properties", R::Type)],
        ),
        case(
            "property number",
            sp,
            |b| set(props_mut(b), "taste", json!(3)),
            &[("dish_list[0].properties.taste", R::Type)],
        ),
        case(
            "count as string",
            sp,
            |b| set_dish(b, 2, "count", json!("2")),
            &[("dish_list[2].count", R::Type)],
        ),
        case(
            "price float",
            sp,
            |b| set_dish(b, 3, "price", json!(12.5)),
            &[("dish_list[3].price", R::Type)],
        ),
        case(
            "priority string",
            sp,
            |b| set_dish(b, 0, "priority", json!("1")),
            &[("dish_list[0].priority", R::Type)],
        ),
        draft(
            "type error in draft",
            ch,
            |b| set(b, "user_amount", json!("20000")),
            &[("user_amount", R::Type)],
        ),
    ]);
}

#[test]
fn nulls_and_unknown_fields() {
    run(&[
        case(
            "null optional",
            sp,
            |b| set(b, "out_table_no", Value::Null),
            &[("out_table_no", R::Null)],
        ),
        case(
            "null required is only null",
            sp,
            |b| set(b, "login_token", Value::Null),
            &[("login_token", R::Null)],
        ),
        case(
            "null dish field",
            sp,
            |b| set_dish(b, 0, "name", Value::Null),
            &[("dish_list[0].name", R::Null)],
        ),
        case(
            "null property",
            sp,
            |b| set(props_mut(b), "taste", Value::Null),
            &[("dish_list[0].properties.taste", R::Null)],
        ),
        case(
            "null properties",
            sp,
            |b| set_dish(b, 0, "properties", Value::Null),
            &[("dish_list[0].properties", R::Null)],
        ),
        case(
            "null dish item",
            sp,
            |b| {
                if let Some(Value::Array(list)) = b.get_mut("dish_list") {
                    list[2] = Value::Null;
                }
            },
            &[("dish_list[2]", R::Null)],
        ),
        case(
            "null dish_list",
            ch,
            |b| set(b, "dish_list", Value::Null),
            &[("dish_list", R::Null)],
        ),
        draft(
            "null in draft",
            sp,
            |b| set(b, "people_count", Value::Null),
            &[("people_count", R::Null)],
        ),
        case(
            "null sp field counts as absent",
            ch,
            |b| set(b, "sp_mchid", Value::Null),
            &[("sp_mchid", R::Null)],
        ),
        case(
            "unknown top-level",
            sp,
            |b| set(b, "shop_name", json!("x")),
            &[("shop_name", R::UnknownField)],
        ),
        draft(
            "unknown top-level in draft",
            ch,
            |b| set(b, "mchid", json!("x")),
            &[("mchid", R::UnknownField)],
        ),
        case(
            "unknown keys sorted, after known",
            sp,
            |b| {
                set(b, "zeta", json!(1));
                set(b, "alpha", Value::Null);
                set(b, "total_amount", json!("1"));
            },
            &[
                ("total_amount", R::Type),
                ("alpha", R::UnknownField),
                ("zeta", R::UnknownField),
            ],
        ),
        case(
            "unknown dish key",
            sp,
            |b| set_dish(b, 3, "spicy", json!(true)),
            &[("dish_list[3].spicy", R::UnknownField)],
        ),
        case(
            "unknown property key",
            sp,
            |b| set(props_mut(b), "spiciness", json!("hot")),
            &[("dish_list[0].properties.spiciness", R::UnknownField)],
        ),
    ]);
}
