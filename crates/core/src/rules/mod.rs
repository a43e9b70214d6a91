//! Request-body rules of WeChat Pay's 点餐订单信息同步 (catering `sync-status`) endpoint.
//!
//! A pure validator: [`validate`] / [`validate_object`] return *every* broken rule as a
//! [`Violation`] with its field path (`sp_mchid`, `dish_list[2].properties.taste`, or the empty
//! path for the body as a whole). The contract is `shared/WECHATPAY.md`; where it is silent, these
//! decisions apply:
//!
//! - **String lengths are counted in UTF-8 bytes**, the stricter reading of `string(32)`: eleven
//!   CJK characters (33 bytes) break a 32 limit. Any character outside the Basic Multilingual Plane
//!   (4 bytes in UTF-8: emoji, rare CJK) is a [`Rule::FourByteUtf8`] violation; an empty string is
//!   [`Rule::Empty`]. Messages never echo field values (`login_token` is a secret); they describe.
//! - `null` is never valid, anywhere ([`Rule::Null`]); a field whose value is `null` counts as
//!   absent when telling the variant or applying required-field rules, so it is reported once, as
//!   `Null`.
//! - Bounds: amounts and dish prices at most [`MAX_AMOUNT`] fen (2^31 − 1: WeChat Pay types them as `int`); beyond the documentation,
//!   `count` at most [`MAX_COUNT`],
//!   `people_count` at most `i32::MAX`, at most [`MAX_DISHES`] dishes (a longer list is one
//!   [`Rule::Range`] violation at `dish_list`, and only the first [`MAX_DISHES`] items are checked).
//! - Integers must be JSON integers: `100.0` or `100.5` is a [`Rule::Type`] violation. `count` is
//!   any JSON number greater than 0 with at most two decimal places, decided exactly from the
//!   number's decimal text (exponent notation included).
//! - Times must be RFC 3339 with offset in the strict form: `T` between date and time and an
//!   upper-case `Z` (RFC 3339 tolerates a space and lower case; WeChat Pay's examples do not).
//! - Undocumented consistency checks (total − discount = user, dish totals) are not enforced;
//!   [`amount_mismatch`] exposes the first for a metric or warning.
//!
//! Order of violations is deterministic: body-level ([`Rule::Variant`]) first, then the fields in
//! [`BODY_FIELDS`] order (so `dish_list` items come last, in index order, each item's fields in
//! [`DISH_FIELDS`] order, its `properties` last), unknown keys of an object after its known fields,
//! sorted by name. Validation only walks the known shape of the body, so it never recurses by
//! input depth.

use std::fmt;

use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How much of the rules to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every rule: variant, required and conditional fields, plus field-level rules. For a body
    /// about to be posted (snapshot with a status).
    Full,
    /// Field-level rules only (types, lengths, formats, enums, ranges, UTF-8, null, unknown
    /// fields, both variants present at once, `openid` in the channel variant); no
    /// required-field checks. For a draft snapshot without status.
    FieldsOnly,
}

/// Which of the two request variants a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// 服务商: identified by `sp_mchid` / `sp_appid`.
    ServiceProvider,
    /// 渠道商: identified by `channel_id`.
    Channel,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Field path: `sp_mchid`, `dish_list[2].properties.taste`, `` (empty) for the body as a whole.
    pub path: String,
    /// Which rule, a stable machine-readable code.
    pub rule: Rule,
    /// Human-readable detail; describes the value, never echoes it.
    pub message: String,
}

/// The kind of rule a [`Violation`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A required (or conditionally required) field is missing.
    Required,
    /// A field is present where it must not be.
    NotAllowed,
    /// Wrong JSON type (including a float where an integer is required).
    Type,
    /// The value is `null`.
    Null,
    /// A key the API does not know.
    UnknownField,
    /// A string longer than its maximum, counted in UTF-8 bytes.
    MaxLength,
    /// An empty string.
    Empty,
    /// A character that needs 4 bytes in UTF-8 (outside the Basic Multilingual Plane).
    FourByteUtf8,
    /// A value outside its enumeration.
    Enum,
    /// A string in the wrong format (RFC 3339 date-time).
    Format,
    /// A number (or the dish count) outside its range.
    Range,
    /// More than two decimal places.
    Decimals,
    /// Not exactly one of the two request variants.
    Variant,
}

impl Rule {
    /// The stable snake_case code of the rule, e.g. `"four_byte_utf8"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::NotAllowed => "not_allowed",
            Rule::Type => "type",
            Rule::Null => "null",
            Rule::UnknownField => "unknown_field",
            Rule::MaxLength => "max_length",
            Rule::Empty => "empty",
            Rule::FourByteUtf8 => "four_byte_utf8",
            Rule::Enum => "enum",
            Rule::Format => "format",
            Rule::Range => "range",
            Rule::Decimals => "decimals",
            Rule::Variant => "variant",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "body"
        } else {
            &self.path
        };
        write!(f, "{path}: {} ({})", self.message, self.rule)
    }
}

impl std::error::Error for Violation {}

/// Every top-level field name the API knows (both variants), in documented order.
pub const BODY_FIELDS: &[&str] = &[
    "sp_mchid",
    "sp_appid",
    "channel_id",
    "sub_mchid",
    "sub_appid",
    "openid",
    "sub_openid",
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
    "out_table_no",
    "people_count",
    "dish_list",
];

/// Every dish_list item field name.
pub const DISH_FIELDS: &[&str] = &[
    "out_dish_no",
    "name",
    "price",
    "unit",
    "count",
    "discount",
    "type",
    "priority",
    "properties",
];

/// Every properties field name.
pub const PROPERTY_FIELDS: &[&str] =
    &["taste", "cuisine", "main_material", "ingredients", "others"];

/// The dish `type` enum values (with the official misspelling `GUAGNDONG_CUISINE`).
pub const DISH_TYPES: &[&str] = &[
    "FAST_FOOD",
    "DRINK",
    "YOYO",
    "BEIJING_CUISINE",
    "SICHUAN_CUISINE",
    "DONGBEI_CUISINE",
    "SOUTHEAST_ASIAN_CUISINE",
    "SEAFOOD",
    "KOREAN_CUISINE",
    "HUBEI_CUISINE",
    "HOT_POT",
    "JIANGZHE_CUISINE",
    "SHANDONG_CUISINE",
    "HALAL_FOOD",
    "JAPANESE_CUISINE",
    "BARBECUE",
    "NORTHWEST_CUISINE",
    "WESTERN_FOOD",
    "HUNAN_CUISINE",
    "SNACK",
    "XINJIANG_CUISINE",
    "GUAGNDONG_CUISINE",
    "YUNNAN_CUISINE",
    "BUFFET",
];

/// Allowed statuses: CREATE_DEAL, PAY_SUCCESS.
pub const STATUSES: &[&str] = &["CREATE_DEAL", "PAY_SUCCESS"];

/// Allowed dish units: BY_SHARE, BY_WEIGHT.
pub const UNITS: &[&str] = &["BY_SHARE", "BY_WEIGHT"];

/// Largest accepted amount or dish price in fen: 2^31 − 1, because WeChat Pay types amounts as
/// `int` (a larger one would overflow on its side: 21,474,836.47 yuan per order is the ceiling).
pub const MAX_AMOUNT: i64 = i32::MAX as i64;

/// Most dishes checked in `dish_list`; a longer list is a [`Rule::Range`] violation.
pub const MAX_DISHES: usize = 1000;

/// Largest dish `count` (a sane bound, not documented by WeChat Pay): a million portions or
/// kilograms. Keeps the fixed-point form of the typed snapshot exact.
pub const MAX_COUNT: f64 = 1_000_000.0;

/// Fields required in both variants (Full mode).
const COMMON_REQUIRED: &[&str] = &[
    "sub_mchid",
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
const DISH_REQUIRED: &[&str] = &["out_dish_no", "name", "price", "unit", "count"];
const PROPERTY_REQUIRED: &[&str] = &["taste", "cuisine", "main_material", "ingredients"];

/// The shape of one field's value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A string with a maximum length in bytes.
    Str(usize),
    /// A string with a maximum length, from a fixed set.
    Enum(usize, &'static [&'static str]),
    /// An RFC 3339 date-time string(64).
    Time,
    /// A JSON integer within an inclusive range.
    Int(i64, i64),
    /// The dish count: a positive number with at most two decimals.
    Count,
    /// The dish list.
    Dishes,
    /// A dish's properties object.
    Props,
}

/// The known fields of one kind of object and the shape of each field's value.
struct Shape {
    fields: &'static [&'static str],
    kind: fn(&str) -> Kind,
    what: &'static str,
}

const BODY: Shape = Shape {
    fields: BODY_FIELDS,
    kind: body_kind,
    what: "the request body",
};
const DISH: Shape = Shape {
    fields: DISH_FIELDS,
    kind: dish_kind,
    what: "a dish_list item",
};
const PROPERTIES: Shape = Shape {
    fields: PROPERTY_FIELDS,
    kind: |_| Kind::Str(128),
    what: "properties",
};

/// Only called with names from [`BODY_FIELDS`]; the ids (`sp_mchid` … `out_shop_no`) are 32.
fn body_kind(name: &str) -> Kind {
    match name {
        "login_token" | "order_entry" => Kind::Str(256),
        "total_amount" | "discount_amount" | "user_amount" => Kind::Int(0, MAX_AMOUNT),
        "status" => Kind::Enum(32, STATUSES),
        "action_time" | "pay_time" => Kind::Time,
        "transaction_id" | "out_trade_no" | "out_order_no" => Kind::Str(64),
        "out_table_no" => Kind::Str(16),
        "people_count" => Kind::Int(1, i64::from(i32::MAX)),
        "dish_list" => Kind::Dishes,
        _ => Kind::Str(32),
    }
}

/// Only called with names from [`DISH_FIELDS`].
fn dish_kind(name: &str) -> Kind {
    match name {
        "out_dish_no" => Kind::Str(48),
        "price" => Kind::Int(0, MAX_AMOUNT),
        "unit" => Kind::Enum(16, UNITS),
        "count" => Kind::Count,
        "discount" => Kind::Int(0, 100),
        "type" => Kind::Enum(32, DISH_TYPES),
        "priority" => Kind::Int(1, 100),
        "properties" => Kind::Props,
        _ => Kind::Str(128),
    }
}

/// Validate a whole body (the JSON value of the request). Returns all violations, empty when
/// valid. A non-object value gives one [`Rule::Type`] violation at path `""`.
pub fn validate(body: &Value, mode: Mode) -> Vec<Violation> {
    match body {
        Value::Object(map) => validate_object(map, mode),
        other => vec![Violation {
            path: String::new(),
            rule: Rule::Type,
            message: format!("must be a JSON object, got {}", type_name(other)),
        }],
    }
}

/// Validate an already-known object; see [`validate`].
pub fn validate_object(body: &Map<String, Value>, mode: Mode) -> Vec<Violation> {
    let mut checker = Checker {
        mode,
        out: Vec::new(),
    };
    checker.variant(body);
    let ctx = BodyCtx::new(body, mode);
    checker.object("", body, &BODY, &|name| ctx.need(name));
    checker.out
}

/// The variant of a body, if it can be told: `Some(ServiceProvider)` when `sp_mchid` or
/// `sp_appid` is present and `channel_id` is not; `Some(Channel)` when `channel_id` is present and
/// no `sp_*` field; `None` otherwise. A field whose value is `null` counts as absent.
pub fn variant_of(body: &Map<String, Value>) -> Option<Variant> {
    let sp = present(body, "sp_mchid") || present(body, "sp_appid");
    match (sp, present(body, "channel_id")) {
        (true, false) => Some(Variant::ServiceProvider),
        (false, true) => Some(Variant::Channel),
        _ => None,
    }
}

/// True when `total_amount`, `discount_amount` and `user_amount` are all present integers and
/// `total_amount − discount_amount ≠ user_amount`. Not a validation rule (WeChat Pay does not
/// document it): for a metric or a warning.
pub fn amount_mismatch(body: &Map<String, Value>) -> bool {
    let amount = |key: &str| body.get(key).and_then(Value::as_i64).map(i128::from);
    match (
        amount("total_amount"),
        amount("discount_amount"),
        amount("user_amount"),
    ) {
        (Some(total), Some(discount), Some(user)) => total - discount != user,
        _ => false,
    }
}

fn present(body: &Map<String, Value>, key: &str) -> bool {
    body.get(key).is_some_and(|v| !v.is_null())
}

/// How a JSON value's type reads in a message ("a string", "an array", …).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether a field must, may or must not be there.
#[derive(Debug, Clone, Copy)]
enum Need {
    Optional,
    Required(&'static str),
    NotAllowed(&'static str),
}

/// Requirement for a dish or properties field: required ones only in Full mode.
fn need_in(mode: Mode, required: &[&str], name: &str) -> Need {
    if mode == Mode::Full && required.contains(&name) {
        Need::Required("is required")
    } else {
        Need::Optional
    }
}

/// What decides the top-level requirements of one body.
struct BodyCtx {
    mode: Mode,
    variant: Option<Variant>,
    paid: bool,
    openid: bool,
    sub_openid: bool,
}

impl BodyCtx {
    fn new(body: &Map<String, Value>, mode: Mode) -> Self {
        BodyCtx {
            mode,
            variant: variant_of(body),
            paid: body.get("status").and_then(Value::as_str) == Some("PAY_SUCCESS"),
            openid: present(body, "openid"),
            sub_openid: present(body, "sub_openid"),
        }
    }

    fn need(&self, name: &str) -> Need {
        let sp = self.variant == Some(Variant::ServiceProvider);
        let channel = self.variant == Some(Variant::Channel);
        if channel && name == "openid" {
            return Need::NotAllowed("is not allowed in the channel variant");
        }
        if self.mode == Mode::FieldsOnly {
            return Need::Optional;
        }
        match name {
            "sp_mchid" | "sp_appid" if sp => {
                Need::Required("is required in the service-provider variant")
            }
            "sub_appid" | "sub_openid" if channel => {
                Need::Required("is required in the channel variant")
            }
            "sub_appid" if sp && self.sub_openid => {
                Need::Required("is required when sub_openid is present")
            }
            "openid" if sp && !self.openid && !self.sub_openid => {
                Need::Required("one of openid or sub_openid is required")
            }
            "sub_openid" if sp && self.openid && self.sub_openid => {
                Need::NotAllowed("openid and sub_openid are mutually exclusive")
            }
            "pay_time" | "transaction_id" | "out_trade_no" if self.paid => {
                Need::Required("is required when status is PAY_SUCCESS")
            }
            _ if COMMON_REQUIRED.contains(&name) => Need::Required("is required"),
            _ => Need::Optional,
        }
    }
}

/// Collects violations while walking the known shape of a body.
struct Checker {
    mode: Mode,
    out: Vec<Violation>,
}

impl Checker {
    fn push(&mut self, path: &str, rule: Rule, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.to_owned(),
            rule,
            message: message.into(),
        });
    }

    fn variant(&mut self, body: &Map<String, Value>) {
        let sp = present(body, "sp_mchid") || present(body, "sp_appid");
        let channel = present(body, "channel_id");
        if sp && channel {
            let msg = "has both channel_id and sp_mchid/sp_appid: a body must be exactly one \
                       variant (channel or service provider)";
            self.push("", Rule::Variant, msg);
        } else if !sp && !channel && self.mode == Mode::Full {
            let msg = "has neither sp_mchid/sp_appid (service-provider variant) nor channel_id \
                       (channel variant)";
            self.push("", Rule::Variant, msg);
        }
    }

    /// Known fields in shape order, then unknown keys sorted by name.
    fn object(
        &mut self,
        prefix: &str,
        obj: &Map<String, Value>,
        shape: &Shape,
        need: &dyn Fn(&str) -> Need,
    ) {
        for name in shape.fields {
            let path = join(prefix, name);
            self.field(&path, (shape.kind)(name), obj.get(*name), need(name));
        }
        let mut unknown: Vec<&String> = obj
            .keys()
            .filter(|key| !shape.fields.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            let msg = format!("is not a field of {}", shape.what);
            self.push(&join(prefix, key), Rule::UnknownField, msg);
        }
    }

    fn field(&mut self, path: &str, kind: Kind, value: Option<&Value>, need: Need) {
        match (value, need) {
            (None, Need::Required(msg)) => self.push(path, Rule::Required, msg),
            (None, _) => {}
            (Some(Value::Null), _) => {
                self.push(path, Rule::Null, "must not be null (leave the field out)")
            }
            (Some(_), Need::NotAllowed(msg)) => self.push(path, Rule::NotAllowed, msg),
            (Some(v), _) => self.value(path, kind, v),
        }
    }

    fn value(&mut self, path: &str, kind: Kind, v: &Value) {
        match kind {
            Kind::Str(max) => {
                self.string(path, v, max);
            }
            Kind::Enum(max, values) => self.enumeration(path, v, max, values),
            Kind::Time => self.time(path, v),
            Kind::Int(min, max) => self.integer(path, v, min, max),
            Kind::Count => self.count(path, v),
            Kind::Dishes => self.dishes(path, v),
            Kind::Props => self.properties(path, v),
        }
    }

    /// Checks a string; returns it when it is a non-empty string (for further checks).
    fn string<'v>(&mut self, path: &str, v: &'v Value, max: usize) -> Option<&'v str> {
        let Value::String(s) = v else {
            self.push(
                path,
                Rule::Type,
                format!("must be a string, got {}", type_name(v)),
            );
            return None;
        };
        if s.is_empty() {
            self.push(path, Rule::Empty, "must not be empty");
            return None;
        }
        if s.chars().any(|c| c.len_utf8() == 4) {
            let msg = "contains a character outside the Basic Multilingual Plane (4-byte UTF-8, \
                       e.g. an emoji), which WeChat Pay rejects";
            self.push(path, Rule::FourByteUtf8, msg);
        }
        if s.len() > max {
            let msg = format!("is {} bytes, max {max}", s.len());
            self.push(path, Rule::MaxLength, msg);
        }
        Some(s)
    }

    fn enumeration(&mut self, path: &str, v: &Value, max: usize, values: &[&str]) {
        let Some(s) = self.string(path, v, max) else {
            return;
        };
        if !values.contains(&s) {
            let msg = if values.len() <= 4 {
                format!("is not one of {}", values.join(", "))
            } else {
                format!("is not one of the {} documented values", values.len())
            };
            self.push(path, Rule::Enum, msg);
        }
    }

    fn time(&mut self, path: &str, v: &Value) {
        let Some(s) = self.string(path, v, 64) else {
            return;
        };
        if !is_rfc3339(s) {
            let msg = "is not an RFC 3339 date-time with offset (e.g. 2018-06-08T10:34:56+08:00)";
            self.push(path, Rule::Format, msg);
        }
    }

    fn integer(&mut self, path: &str, v: &Value, min: i64, max: i64) {
        let Value::Number(n) = v else {
            self.push(
                path,
                Rule::Type,
                format!("must be an integer, got {}", type_name(v)),
            );
            return;
        };
        let value = match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i128::from(i),
            (None, Some(u)) => i128::from(u),
            (None, None) => {
                let msg = "must be an integer, got a number with a fraction or exponent";
                self.push(path, Rule::Type, msg);
                return;
            }
        };
        if value < i128::from(min) {
            self.push(path, Rule::Range, format!("is below the minimum {min}"));
        } else if value > i128::from(max) {
            self.push(path, Rule::Range, format!("is above the maximum {max}"));
        }
    }

    fn count(&mut self, path: &str, v: &Value) {
        let Value::Number(n) = v else {
            self.push(
                path,
                Rule::Type,
                format!("must be a number, got {}", type_name(v)),
            );
            return;
        };
        let Some(decimal) = Decimal::of(n) else {
            self.push(path, Rule::Type, "is not a decimal number");
            return;
        };
        if !decimal.positive {
            self.push(path, Rule::Range, "must be greater than 0");
        } else if n.as_f64().is_none_or(|f| f > MAX_COUNT) {
            self.push(
                path,
                Rule::Range,
                format!("is above the maximum {MAX_COUNT}"),
            );
        }
        if decimal.places > 2 {
            let msg = format!("has {} decimal places, max 2", decimal.places);
            self.push(path, Rule::Decimals, msg);
        }
    }

    fn dishes(&mut self, path: &str, v: &Value) {
        let Value::Array(items) = v else {
            self.push(
                path,
                Rule::Type,
                format!("must be an array, got {}", type_name(v)),
            );
            return;
        };
        if items.len() > MAX_DISHES {
            let msg = format!(
                "has {} items, max {MAX_DISHES} (only the first {MAX_DISHES} are checked)",
                items.len()
            );
            self.push(path, Rule::Range, msg);
        }
        let mode = self.mode;
        let need = move |name: &str| need_in(mode, DISH_REQUIRED, name);
        for (i, item) in items.iter().take(MAX_DISHES).enumerate() {
            let item_path = format!("{path}[{i}]");
            match item {
                Value::Object(obj) => self.object(&item_path, obj, &DISH, &need),
                Value::Null => self.push(&item_path, Rule::Null, "must not be null"),
                other => {
                    let msg = format!("must be an object, got {}", type_name(other));
                    self.push(&item_path, Rule::Type, msg);
                }
            }
        }
    }

    fn properties(&mut self, path: &str, v: &Value) {
        let Value::Object(obj) = v else {
            self.push(
                path,
                Rule::Type,
                format!("must be an object, got {}", type_name(v)),
            );
            return;
        };
        let mode = self.mode;
        let need = move |name: &str| need_in(mode, PROPERTY_REQUIRED, name);
        self.object(path, obj, &PROPERTIES, &need);
    }
}

/// RFC 3339 with offset, in the strict form WeChat Pay documents: upper-case `T` separator
/// and `Z` (the `time` parser also takes a space, `t` and `z`).
pub fn is_rfc3339(s: &str) -> bool {
    s.as_bytes().get(10) == Some(&b'T')
        && !s.ends_with('z')
        && OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

/// Sign and scale of a JSON number, taken exactly from its decimal text.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    /// Strictly greater than zero.
    positive: bool,
    /// Decimal places after removing trailing zeros (`1.50` has 1, `1e-3` has 3, `12e3` has 0).
    places: u64,
}

impl Decimal {
    /// From serde_json's text of the number: shortest round-trip form for floats, which
    /// may use exponent notation; the integer itself otherwise.
    fn of(n: &Number) -> Option<Decimal> {
        Decimal::parse(&n.to_string())
    }

    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
            Some((m, e)) => (m, parse_exponent(e)?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
        if !all_digits || (int.is_empty() && frac.is_empty()) {
            return None;
        }
        let nonzero = int.bytes().chain(frac.bytes()).any(|b| b != b'0');
        let frac_zeros = frac.len() - frac.trim_end_matches('0').len();
        let mut trailing = frac_zeros;
        if frac_zeros == frac.len() {
            trailing += int.len() - int.trim_end_matches('0').len();
        }
        // value = digits × 10^scale once trailing zeros are dropped.
        let scale = exponent
            .saturating_sub(i64::try_from(frac.len()).unwrap_or(i64::MAX))
            .saturating_add(i64::try_from(trailing).unwrap_or(i64::MAX));
        let places = if nonzero && scale < 0 {
            scale.unsigned_abs()
        } else {
            0
        };
        Some(Decimal {
            positive: nonzero && !negative,
            places,
        })
    }
}

/// An exponent such as `-7`, `+21` or `300`, saturating instead of overflowing.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests;
