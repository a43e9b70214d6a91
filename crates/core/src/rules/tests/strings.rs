//! Tests: string lengths, emptiness and four-byte characters.

use super::*;

#[test]
fn string_rules() {
    run(&[
        case(
            "33-byte sp_mchid",
            sp,
            |b| set(b, "sp_mchid", json!("1".repeat(33))),
            &[("sp_mchid", R::MaxLength)],
        ),
        case(
            "11 CJK chars are 33 bytes",
            sp,
            |b| set(b, "sub_mchid", json!("宫".repeat(11))),
            &[("sub_mchid", R::MaxLength)],
        ),
        case(
            "17-byte table",
            sp,
            |b| set(b, "out_table_no", json!("T".repeat(17))),
            &[("out_table_no", R::MaxLength)],
        ),
        case(
            "257-byte login_token",
            sp,
            |b| set(b, "login_token", json!("t".repeat(257))),
            &[("login_token", R::MaxLength)],
        ),
        case(
            "257-byte order_entry",
            ch,
            |b| set(b, "order_entry", json!("p".repeat(257))),
            &[("order_entry", R::MaxLength)],
        ),
        case(
            "65-byte transaction_id",
            sp,
            |b| set(b, "transaction_id", json!("4".repeat(65))),
            &[("transaction_id", R::MaxLength)],
        ),
        case(
            "49-byte out_dish_no",
            sp,
            |b| set_dish(b, 1, "out_dish_no", json!("D".repeat(49))),
            &[("dish_list[1].out_dish_no", R::MaxLength)],
        ),
        case(
            "43 CJK chars in name",
            sp,
            |b| set_dish(b, 1, "name", json!("鸡".repeat(43))),
            &[("dish_list[1].name", R::MaxLength)],
        ),
        case(
            "129-byte property",
            sp,
            |b| set(props_mut(b), "others", json!("a".repeat(129))),
            &[("dish_list[0].properties.others", R::MaxLength)],
        ),
        case(
            "empty string",
            sp,
            |b| set(b, "out_shop_no", json!("")),
            &[("out_shop_no", R::Empty)],
        ),
        case(
            "empty dish name",
            sp,
            |b| set_dish(b, 4, "name", json!("")),
            &[("dish_list[4].name", R::Empty)],
        ),
        case(
            "empty enum",
            sp,
            |b| set(b, "status", json!("")),
            &[("status", R::Empty)],
        ),
        draft(
            "empty in draft",
            sp,
            |b| set(b, "order_entry", json!("")),
            &[("order_entry", R::Empty)],
        ),
        case(
            "emoji in dish name",
            sp,
            |b| set_dish(b, 1, "name", json!("🍜")),
            &[("dish_list[1].name", R::FourByteUtf8)],
        ),
        case(
            "rare CJK",
            sp,
            |b| set(b, "out_table_no", json!("𠀀1")),
            &[("out_table_no", R::FourByteUtf8)],
        ),
        case(
            "emoji in property",
            sp,
            |b| set(props_mut(b), "others", json!("辣🌶")),
            &[("dish_list[0].properties.others", R::FourByteUtf8)],
        ),
        case(
            "emoji and too long",
            sp,
            |b| set(b, "openid", json!("🍜".repeat(9))),
            &[("openid", R::FourByteUtf8), ("openid", R::MaxLength)],
        ),
        draft(
            "emoji in draft",
            ch,
            |b| set(b, "out_shop_no", json!("店😀")),
            &[("out_shop_no", R::FourByteUtf8)],
        ),
    ]);
}
