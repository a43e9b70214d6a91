//! The body rules on the typed snapshot, without a `serde_json::Value` of it: a yes/no answer
//! for the common case (the snapshot is valid), so that applying an event does not build a JSON
//! tree per event. [`crate::rules`] stays the one source of the rules' *violations*: when
//! [`is_valid`] says no, `order::validate` asks the rules what is wrong, through a `Value`.
//!
//! [`is_valid`] may only say yes where the rules find no violation; the differential tests below
//! hold it to exactly the rules' answer (yes and no) on arbitrary and on boundary snapshots.
//! What the types already guarantee is not checked again: no unknown fields and no `null`
//! (optional fields are left out), `status`, `unit` and `type` within their enumerations.

use super::types::{Dish, Properties, Snapshot, Status};
use crate::rules::{is_rfc3339, MAX_AMOUNT, MAX_DISHES};

/// Largest dish count in hundredths within the rules' maximum ([`crate::rules::MAX_COUNT`],
/// a million): every count from 1 to this serialises with at most two decimals.
const MAX_COUNT_HUNDREDTHS: u64 = 100_000_000;

/// Whether the rules find no violation in `s`: every rule once it has a status, the field rules
/// for a draft (the mode `order::validate` picks).
pub(super) fn is_valid(s: &Snapshot) -> bool {
    let full = s.status.is_some();
    fields_ok(s) && variant_ok(s, full) && (!full || required_ok(s))
}

/// A string field: not empty, at most `max` UTF-8 bytes, no 4-byte UTF-8 character.
fn text(s: &str, max: usize) -> bool {
    // In valid UTF-8 only the lead byte of a 4-byte sequence is ≥ 0xF0.
    !s.is_empty() && s.len() <= max && !s.bytes().any(|b| b >= 0xF0)
}

fn opt_text(s: &Option<Box<str>>, max: usize) -> bool {
    s.as_deref().is_none_or(|s| text(s, max))
}

fn opt_time(s: &Option<Box<str>>) -> bool {
    s.as_deref().is_none_or(|s| text(s, 64) && is_rfc3339(s))
}

fn opt_amount(a: Option<i64>) -> bool {
    a.is_none_or(|a| (0..=MAX_AMOUNT).contains(&a))
}

/// Field-level rules (both modes).
fn fields_ok(s: &Snapshot) -> bool {
    [
        &s.sp_mchid,
        &s.sp_appid,
        &s.channel_id,
        &s.sub_mchid,
        &s.sub_appid,
        &s.openid,
        &s.sub_openid,
        &s.out_shop_no,
    ]
    .into_iter()
    .all(|id| opt_text(id, 32))
        && s.login_token.as_ref().is_none_or(|t| text(&t.0, 256))
        && opt_text(&s.order_entry, 256)
        && opt_amount(s.total_amount)
        && opt_amount(s.discount_amount)
        && opt_amount(s.user_amount)
        && opt_time(&s.action_time)
        && opt_time(&s.pay_time)
        && opt_text(&s.transaction_id, 64)
        && opt_text(&s.out_trade_no, 64)
        && opt_text(&s.out_order_no, 64)
        && opt_text(&s.out_table_no, 16)
        && s.people_count
            .is_none_or(|n| n >= 1 && i64::from(n) <= i64::from(i32::MAX))
        && s.dish_list.as_deref().is_none_or(|dishes| {
            dishes.len() <= MAX_DISHES && dishes.iter().all(|d| dish_ok(d, s.status.is_some()))
        })
}

/// One dish's field rules, and in full mode its required fields.
fn dish_ok(d: &Dish, full: bool) -> bool {
    opt_text(&d.out_dish_no, 48)
        && opt_text(&d.name, 128)
        && opt_amount(d.price)
        && d.count
            .is_none_or(|c| (1..=MAX_COUNT_HUNDREDTHS).contains(&c.0))
        && d.discount.is_none_or(|p| p <= 100)
        && d.priority.is_none_or(|p| (1..=100).contains(&p))
        && d.properties
            .as_deref()
            .is_none_or(|p| properties_ok(p, full))
        && (!full
            || (d.out_dish_no.is_some()
                && d.name.is_some()
                && d.price.is_some()
                && d.unit.is_some()
                && d.count.is_some()))
}

fn properties_ok(p: &Properties, full: bool) -> bool {
    [
        &p.taste,
        &p.cuisine,
        &p.main_material,
        &p.ingredients,
        &p.others,
    ]
    .into_iter()
    .all(|f| opt_text(f, 128))
        && (!full
            || (p.taste.is_some()
                && p.cuisine.is_some()
                && p.main_material.is_some()
                && p.ingredients.is_some()))
}

/// Exactly one variant (none at all is a violation only in full mode), and no `openid` in the
/// channel variant (both modes).
fn variant_ok(s: &Snapshot, full: bool) -> bool {
    let sp = s.sp_mchid.is_some() || s.sp_appid.is_some();
    let channel = s.channel_id.is_some();
    match (sp, channel) {
        (true, true) => false,
        (false, false) => !full,
        (false, true) => s.openid.is_none(),
        (true, false) => true,
    }
}

/// The required and conditional fields of a body with a status (its variant is known to be
/// exactly one: [`variant_ok`] ran first).
fn required_ok(s: &Snapshot) -> bool {
    let common = s.sub_mchid.is_some()
        && s.out_shop_no.is_some()
        && s.login_token.is_some()
        && s.order_entry.is_some()
        && s.total_amount.is_some()
        && s.discount_amount.is_some()
        && s.user_amount.is_some()
        && s.action_time.is_some()
        && s.out_order_no.is_some()
        && s.dish_list.is_some();
    let paid = s.status != Some(Status::PaySuccess)
        || (s.pay_time.is_some() && s.transaction_id.is_some() && s.out_trade_no.is_some());
    let variant = if s.channel_id.is_some() {
        s.sub_appid.is_some() && s.sub_openid.is_some()
    } else {
        let (openid, sub_openid) = (s.openid.is_some(), s.sub_openid.is_some());
        s.sp_mchid.is_some()
            && s.sp_appid.is_some()
            && (openid != sub_openid)
            && (!sub_openid || s.sub_appid.is_some())
    };
    common && paid && variant
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{decode, DecodeLimits};
    use crate::fixtures::order_events;
    use crate::rules::{self, Mode};
    use crate::snapshot::types::{Count, Secret};
    use crate::snapshot::{Defaults, OrderState};

    /// The rules' answer, through a `Value` of the snapshot.
    fn rules_say_valid(s: &Snapshot) -> bool {
        let mode = if s.status.is_some() {
            Mode::Full
        } else {
            Mode::FieldsOnly
        };
        rules::validate(&serde_json::to_value(s).unwrap(), mode).is_empty()
    }

    /// A fixture order after its events: valid, 5 dishes (the second with properties), in the
    /// variant `variant` picks: 0 service provider with `openid`, 1 service provider with
    /// `sub_openid` and `sub_appid`, 2 channel.
    fn valid(paid: bool, variant: u8) -> Snapshot {
        let mut state = OrderState::default();
        let events = order_events(3, 5);
        for value in &events[..if paid { 2 } else { 1 }] {
            let event = decode(value, &DecodeLimits::default()).unwrap();
            let _ = state.apply(&event, &Defaults::default());
        }
        let mut s = state.snapshot();
        let mut dishes = s.dish_list.take().unwrap().into_vec();
        dishes[1].properties = Some(Box::new(Properties {
            taste: Some("辣".into()),
            cuisine: Some("川菜".into()),
            main_material: Some("鸡".into()),
            ingredients: Some("花生".into()),
            others: None,
        }));
        s.dish_list = Some(dishes.into());
        match variant % 3 {
            0 => {}
            1 => {
                s.sub_openid = s.openid.take();
                s.sub_appid = Some("wx9999999999999999".into());
            }
            _ => {
                s.sp_mchid = None;
                s.sp_appid = None;
                s.channel_id = Some("1900000801".into());
                s.sub_openid = s.openid.take();
                s.sub_appid = Some("wx9999999999999999".into());
            }
        }
        assert!(rules_say_valid(&s) && is_valid(&s), "variant {variant}");
        s
    }

    /// Strings at and beyond the limits: empty, the limit, one over, a 3-byte character that
    /// fits, a 4-byte one.
    fn edge_text(max: usize, pick: usize) -> Option<Box<str>> {
        Some(
            match pick % 7 {
                0 => String::new(),
                1 => "a".repeat(max),
                2 => "a".repeat(max + 1),
                3 => "面".repeat(max / 3),
                4 => "😀".into(),
                5 => format!("{}é", "a".repeat(max.saturating_sub(2))),
                _ => return None,
            }
            .into(),
        )
    }

    /// One boundary edit of a valid snapshot, chosen by `pick`, with `n` as its parameter.
    fn edit(s: &mut Snapshot, pick: u8, n: u64) {
        let (pick, ni) = (pick % 40, n as usize);
        let amount = [0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, -1, i64::MIN, i64::MAX][ni % 7];
        if pick >= 22 {
            if let Some(dishes) = s.dish_list.as_deref_mut().filter(|d| !d.is_empty()) {
                let len = dishes.len();
                edit_dish(&mut dishes[(ni / 7) % len], pick, n, amount);
            }
            return;
        }
        match pick {
            0 => s.sp_mchid = edge_text(32, ni),
            1 => s.sp_appid = edge_text(32, ni),
            2 => s.channel_id = edge_text(32, ni),
            3 => s.sub_mchid = edge_text(32, ni),
            4 => s.sub_appid = edge_text(32, ni),
            5 => s.openid = edge_text(32, ni),
            6 => s.sub_openid = edge_text(32, ni),
            7 => s.out_shop_no = edge_text(32, ni),
            8 => s.login_token = edge_text(256, ni).map(Secret),
            9 => s.order_entry = edge_text(256, ni),
            10 => s.total_amount = Some(amount),
            11 => s.discount_amount = Some(amount),
            12 => s.user_amount = (ni % 8 != 7).then_some(amount),
            13 => s.status = [None, Some(Status::CreateDeal), Some(Status::PaySuccess)][ni % 3],
            14 | 15 => {
                let t = [
                    "2026-11-27T12:30:00+08:00",
                    "2026-11-27T12:30:00Z",
                    "2026-11-27T12:30:00z",
                    "2026-11-27 12:30:00+08:00",
                    "2026-11-27T12:30:00",
                    "2026-13-27T12:30:00+08:00",
                    "",
                ][ni % 7];
                let t: Option<Box<str>> = (ni % 8 != 7).then(|| t.into());
                if pick == 14 {
                    s.action_time = t;
                } else {
                    s.pay_time = t;
                }
            }
            16 => s.transaction_id = edge_text(64, ni),
            17 => s.out_trade_no = edge_text(64, ni),
            18 => s.out_order_no = edge_text(64, ni),
            19 => s.out_table_no = edge_text(16, ni),
            20 => {
                s.people_count = [None, Some(0), Some(1), Some(i32::MAX as u32)]
                    .get(ni % 5)
                    .copied()
                    .unwrap_or(Some(i32::MAX as u32 + 1))
            }
            _ => {
                let one = s.dish_list.as_ref().and_then(|d| d.first().cloned());
                s.dish_list = match ni % 4 {
                    0 => None,
                    1 => Some(Vec::new().into()),
                    k => {
                        let len = if k == 2 { MAX_DISHES } else { MAX_DISHES + 1 };
                        one.map(|d| vec![d; len].into())
                    }
                }
            }
        }
    }

    /// One boundary edit of a dish (`pick` 22–39).
    fn edit_dish(d: &mut Dish, pick: u8, n: u64, amount: i64) {
        let ni = n as usize;
        match pick {
            22 => d.out_dish_no = edge_text(48, ni),
            23 => d.name = edge_text(128, ni),
            24 => d.price = Some(amount),
            25 => d.unit = None,
            26 => {
                d.count = [
                    None,
                    Some(Count(0)),
                    Some(Count(1)),
                    Some(Count(MAX_COUNT_HUNDREDTHS)),
                    Some(Count(MAX_COUNT_HUNDREDTHS + 1)),
                    Some(Count(n % (MAX_COUNT_HUNDREDTHS + 2))),
                    Some(Count(n)),
                ][ni % 7]
            }
            27 => d.discount = [None, Some(0), Some(100), Some(101), Some(255)][ni % 5],
            28 => d.priority = [None, Some(0), Some(1), Some(100), Some(101)][ni % 5],
            29 => d.dish_type = None,
            30 => d.properties = None,
            31..=35 => {
                let p = d.properties.get_or_insert_with(|| {
                    Box::new(Properties {
                        taste: None,
                        cuisine: None,
                        main_material: None,
                        ingredients: None,
                        others: None,
                    })
                });
                let f = match pick - 31 {
                    0 => &mut p.taste,
                    1 => &mut p.cuisine,
                    2 => &mut p.main_material,
                    3 => &mut p.ingredients,
                    _ => &mut p.others,
                };
                *f = edge_text(128, ni);
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Boundary edits of valid snapshots: the typed answer is exactly the rules' answer.
        #[test]
        fn agrees_with_the_rules_at_the_limits(
            paid in any::<bool>(),
            variant in 0..3u8,
            edits in proptest::collection::vec((any::<u8>(), any::<u64>()), 0..4),
        ) {
            let mut s = valid(paid, variant);
            for (pick, n) in edits {
                edit(&mut s, pick, n);
            }
            prop_assert_eq!(is_valid(&s), rules_say_valid(&s), "{:?}", s);
        }

        /// Arbitrary snapshots (almost all invalid): never valid where the rules say otherwise.
        #[test]
        fn agrees_with_the_rules_on_arbitrary_snapshots(
            s in crate::snapshot::packed::tests::arb_snapshot(),
        ) {
            prop_assert_eq!(is_valid(&s), rules_say_valid(&s), "{:?}", s);
        }
    }

    /// Every count the typed check accepts serialises with at most two decimals, within the
    /// maximum: checked on all counts up to 200.00 and around the maximum, through the rules.
    #[test]
    fn accepted_counts_serialise_as_the_rules_require() {
        let mut s = valid(false, 0);
        let edges = (0..=20_000).chain(MAX_COUNT_HUNDREDTHS - 20_000..=MAX_COUNT_HUNDREDTHS + 2);
        for c in edges.chain((1..=1_000).map(|k| k * 99_991)) {
            s.dish_list.as_mut().unwrap()[0].count = Some(Count(c));
            assert_eq!(is_valid(&s), rules_say_valid(&s), "count {c}");
        }
    }
}
