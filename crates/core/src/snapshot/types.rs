//! The typed, compact form of an order snapshot (the sync-status body so far) and of a patch.
//!
//! Strings are `Box<str>` (16 bytes, no spare capacity), enums are one byte, `count` is fixed-point
//! hundredths. Field order is the API's documented order, which makes serialisation stable.
//! Both [`Snapshot`] and [`Patch`] are generated from one field list, so they cannot drift apart.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// Order status, forward only: `CREATE_DEAL` → `PAY_SUCCESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The guest placed the order.
    #[serde(rename = "CREATE_DEAL")]
    CreateDeal,
    /// Payment succeeded.
    #[serde(rename = "PAY_SUCCESS")]
    PaySuccess,
}

impl Status {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateDeal => "CREATE_DEAL",
            Self::PaySuccess => "PAY_SUCCESS",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a dish is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Per portion.
    #[serde(rename = "BY_SHARE")]
    ByShare,
    /// By weight.
    #[serde(rename = "BY_WEIGHT")]
    ByWeight,
}

macro_rules! dish_types {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// The dish `type` enum (the official spelling, `GUAGNDONG_CUISINE` included).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[allow(missing_docs)]
        pub enum DishType { $(#[serde(rename = $name)] $variant),* }

        impl DishType {
            /// Every value in declaration order (its packed form is its index here).
            pub(super) const ALL: [DishType; [$($name),*].len()] = [$(DishType::$variant),*];

            /// The index of this value in [`Self::ALL`].
            pub(super) fn index(self) -> u8 {
                self as u8
            }
        }
    };
}

dish_types! {
    FastFood = "FAST_FOOD", Drink = "DRINK", Yoyo = "YOYO", BeijingCuisine = "BEIJING_CUISINE",
    SichuanCuisine = "SICHUAN_CUISINE", DongbeiCuisine = "DONGBEI_CUISINE",
    SoutheastAsianCuisine = "SOUTHEAST_ASIAN_CUISINE", Seafood = "SEAFOOD",
    KoreanCuisine = "KOREAN_CUISINE", HubeiCuisine = "HUBEI_CUISINE", HotPot = "HOT_POT",
    JiangzheCuisine = "JIANGZHE_CUISINE", ShandongCuisine = "SHANDONG_CUISINE", HalalFood = "HALAL_FOOD",
    JapaneseCuisine = "JAPANESE_CUISINE", Barbecue = "BARBECUE", NorthwestCuisine = "NORTHWEST_CUISINE",
    WesternFood = "WESTERN_FOOD", HunanCuisine = "HUNAN_CUISINE", Snack = "SNACK",
    XinjiangCuisine = "XINJIANG_CUISINE", GuangdongCuisine = "GUAGNDONG_CUISINE",
    YunnanCuisine = "YUNNAN_CUISINE", Buffet = "BUFFET",
}

/// A dish count with at most two decimals, stored exactly as hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            s.serialize_u64(self.0 / 100)
        } else {
            // The shortest representation of the nearest double to x.yz is "x.yz" itself.
            s.serialize_f64(self.0 as f64 / 100.0)
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        if let Some(u) = n.as_u64() {
            return u
                .checked_mul(100)
                .map(Count)
                .ok_or_else(|| de::Error::custom("count too large"));
        }
        let f = n
            .as_f64()
            .ok_or_else(|| de::Error::custom("count is not a number"))?;
        let hundredths = (f * 100.0).round();
        if !(0.0..=1e15).contains(&hundredths)
            || ((hundredths / 100.0) - f).abs() > 1e-9 * f.abs().max(1.0)
        {
            return Err(de::Error::custom(
                "count must be ≥ 0 with at most two decimals",
            ));
        }
        Ok(Count(hundredths as u64))
    }
}

/// `properties` of a dish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Properties {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub taste: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cuisine: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub main_material: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ingredients: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub others: Option<Box<str>>,
}

/// One `dish_list` item. Fields are optional here because a draft may be incomplete; the body
/// rules decide what a snapshot with a status must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Dish {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub out_dish_no: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub price: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<Unit>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub discount: Option<u8>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub dish_type: Option<DishType>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub properties: Option<Box<Properties>>,
}

/// [`Properties`] as a changelog record is decoded: the same fields and serde rules, strings
/// borrowed from the record where they have no escapes (packed, never kept: `super::packed`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PropertiesIn<'a> {
    #[serde(default, borrow)]
    pub(super) taste: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) cuisine: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) main_material: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) ingredients: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) others: Option<Text<'a>>,
}

/// [`Dish`] as a changelog record is decoded: the same fields and serde rules (`properties`
/// unboxed: `Box<T>` decodes as `T`), strings borrowed where they have no escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DishIn<'a> {
    #[serde(default, borrow)]
    pub(super) out_dish_no: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(default)]
    pub(super) price: Option<i64>,
    #[serde(default)]
    pub(super) unit: Option<Unit>,
    #[serde(default)]
    pub(super) count: Option<Count>,
    #[serde(default)]
    pub(super) discount: Option<u8>,
    #[serde(rename = "type", default)]
    pub(super) dish_type: Option<DishType>,
    #[serde(default)]
    pub(super) priority: Option<u8>,
    #[serde(default, borrow)]
    pub(super) properties: Option<PropertiesIn<'a>>,
}

/// A string as `Box<str>` decodes one (the same inputs accepted), borrowed from the input when
/// the decoder can lend it (no escapes), else owned.
pub(super) struct Text<'a>(pub(super) std::borrow::Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use std::borrow::Cow;
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        // What `String`'s visitor accepts, nothing more.
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                match std::str::from_utf8(v) {
                    Ok(s) => Ok(Text(Cow::Borrowed(s))),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
                }
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                match std::str::from_utf8(v) {
                    Ok(s) => Ok(Text(Cow::Owned(s.to_owned()))),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
                }
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                match String::from_utf8(v) {
                    Ok(s) => Ok(Text(Cow::Owned(s))),
                    Err(e) => Err(E::invalid_value(
                        de::Unexpected::Bytes(&e.into_bytes()),
                        &self,
                    )),
                }
            }
        }
        d.deserialize_string(V(std::marker::PhantomData))
    }
}

/// `Some(None)` for an explicit `null` (RFC 7396: remove), `Some(Some(v))` for a value.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

macro_rules! body_fields {
    ($($field:ident : $ty:ty),* $(,)?) => {
        /// The merged order: every sync-status body field, each optional (a draft may lack any).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(missing_docs)]
        pub struct Snapshot {
            $(#[serde(skip_serializing_if = "Option::is_none", default)] pub $field: Option<$ty>,)*
        }

        /// A typed RFC 7396 merge patch over [`Snapshot`]. Every top-level member of the body is
        /// a scalar or an array (replaced whole), so merging is per field.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(missing_docs)]
        pub struct Patch {
            $(#[serde(default, deserialize_with = "double_option")] pub $field: Option<Option<$ty>>,)*
        }

        /// [`Snapshot`] as a changelog record is decoded: the same fields and serde rules,
        /// each value in its borrowed decoded form (`super::packed::In`), packed straight into
        /// a [`super::packed::PackedSnapshot`] without building the snapshot.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct SnapshotIn<'a> {
            $(#[serde(default, borrow)] pub(super) $field: Option<super::packed::In<'a, $ty>>,)*
        }

        // The in-memory packed form, from the same field list (`super::packed`).
        super::packed::packed_struct!(Snapshot / SnapshotIn { $($field),* });

        impl Snapshot {
            /// Merge `patch` into `self` (RFC 7396 for this shape: set, replace, `null` removes).
            pub fn merge(&mut self, patch: &Patch) {
                $(if let Some(v) = &patch.$field { self.$field = v.clone(); })*
            }
        }
    };
}

body_fields! {
    sp_mchid: Box<str>,
    sp_appid: Box<str>,
    channel_id: Box<str>,
    sub_mchid: Box<str>,
    sub_appid: Box<str>,
    openid: Box<str>,
    sub_openid: Box<str>,
    out_shop_no: Box<str>,
    login_token: Secret,
    order_entry: Box<str>,
    total_amount: i64,
    discount_amount: i64,
    user_amount: i64,
    status: Status,
    action_time: Box<str>,
    pay_time: Box<str>,
    transaction_id: Box<str>,
    out_trade_no: Box<str>,
    out_order_no: Box<str>,
    out_table_no: Box<str>,
    people_count: u32,
    dish_list: Box<[Dish]>,
}

/// The guest's session key: serialised into the body, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub Box<str>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// A decoded, valid order event (made by `event::decode`; it lives with the snapshot it
/// changes, so the snapshot never imports the decoder).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    /// Identifies the event within its order.
    pub event_id: String,
    /// The order.
    pub out_order_no: String,
    /// RFC 3339 with offset, as sent (validated).
    pub occurred_at: String,
    /// Optional per-order sequence number.
    pub seq: Option<u64>,
    /// The merge patch, typed.
    pub patch: Patch,
}

/// An event is its own event (so [`crate::plan::next`] takes plain events and the service's
/// queued jobs alike).
impl AsRef<OrderEvent> for OrderEvent {
    fn as_ref(&self) -> &OrderEvent {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_round_trips_exactly() {
        for (text, hundredths, out) in [
            ("1", 100, "1"),
            ("1.5", 150, "1.5"),
            ("0.29", 29, "0.29"),
            ("2.675", 0, ""),
            ("1.15", 115, "1.15"),
            ("1e2", 10000, "100"),
        ] {
            let parsed: Result<Count, _> = serde_json::from_str(text);
            if out.is_empty() {
                assert!(parsed.is_err(), "{text}");
                continue;
            }
            let c = parsed.unwrap();
            assert_eq!(c.0, hundredths, "{text}");
            assert_eq!(serde_json::to_string(&c).unwrap(), out);
        }
    }

    #[test]
    fn merge_sets_replaces_and_removes() {
        let mut s = Snapshot::default();
        let p: Patch = serde_json::from_str(
            r#"{"out_table_no":"A1","total_amount":100,"dish_list":[{"name":"面"}]}"#,
        )
        .unwrap();
        s.merge(&p);
        assert_eq!(s.out_table_no.as_deref(), Some("A1"));
        let p: Patch = serde_json::from_str(
            r#"{"out_table_no":null,"dish_list":[{"name":"饭"},{"name":"汤"}]}"#,
        )
        .unwrap();
        s.merge(&p);
        assert_eq!(s.out_table_no, None);
        assert_eq!(s.total_amount, Some(100), "untouched fields stay");
        assert_eq!(
            s.dish_list.as_ref().unwrap().len(),
            2,
            "arrays are replaced whole"
        );
        assert!(format!(
            "{:?}",
            Snapshot {
                login_token: Some(Secret("tok".into())),
                ..Snapshot::default()
            }
        )
        .contains("redacted"));
    }
}
