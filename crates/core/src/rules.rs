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
//! - Sane bounds beyond the documentation: amounts and dish prices at most [`MAX_AMOUNT`] fen,
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

/// Largest accepted amount or dish price in fen (10^15, a sanity bound, not WeChat's).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    use Rule as R;

    type Body = Map<String, Value>;

    fn obj(value: Value) -> Body {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn dish(no: &str, name: &str, price: i64, unit: &str, count: Value) -> Value {
        json!({"out_dish_no": no, "name": name, "price": price, "unit": unit, "count": count})
    }

    fn dishes() -> Value {
        let mut first = dish("D001", "宫保鸡丁", 4800, "BY_SHARE", json!(1));
        let extra = json!({
            "discount": 100, "type": "SICHUAN_CUISINE", "priority": 1,
            "properties": {
                "taste": "麻辣 | 微甜", "cuisine": "川菜", "main_material": "鸡肉",
                "ingredients": "花生 | 干辣椒 | 葱", "others": "招牌菜"
            }
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut first, extra) {
            d.extend(e);
        }
        json!([
            first,
            dish("D002", "鱼香肉丝", 3600, "BY_SHARE", json!(1)),
            dish("D003", "米饭", 200, "BY_SHARE", json!(2)),
            dish("D004", "酸梅汤", 1200, "BY_SHARE", json!(1)),
            dish("D005", "清蒸鲈鱼", 8000, "BY_WEIGHT", json!(1.5)),
        ])
    }

    /// Service provider, PAY_SUCCESS, openid.
    fn sp() -> Body {
        obj(json!({
            "sp_mchid": "1900000100", "sp_appid": "wx8888888888888888",
            "sub_mchid": "1900000109", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "out_shop_no": "shop-0001", "login_token": "SECRET_TOKEN_abcdefghijklmnop",
            "order_entry": "https://order.example.com/shop-0001/menu",
            "total_amount": 22000, "discount_amount": 2000, "user_amount": 20000,
            "status": "PAY_SUCCESS", "action_time": "2024-06-08T10:40:12+08:00",
            "pay_time": "2024-06-08T10:40:10+08:00",
            "transaction_id": "4200000000202406081234567890",
            "out_trade_no": "PAY20240608000123", "out_order_no": "ORD20240608000123",
            "out_table_no": "A12", "people_count": 3, "dish_list": dishes()
        }))
    }

    /// Channel, CREATE_DEAL.
    fn ch() -> Body {
        obj(json!({
            "channel_id": "CH000001", "sub_mchid": "1900000109",
            "sub_appid": "wx1234567890abcdef", "sub_openid": "oXyz8uMuAJO_M2pxb1Q9zNjWeS6o",
            "out_shop_no": "店铺-0001", "login_token": "SESSION_KEY_abcdefghijklmnop==",
            "order_entry": "pages/menu/index?shop=0001",
            "total_amount": 22000, "discount_amount": 2000, "user_amount": 20000,
            "status": "CREATE_DEAL", "action_time": "2024-06-08T02:34:56Z",
            "out_order_no": "ORD20240608000124", "dish_list": dishes()
        }))
    }

    fn set(b: &mut Body, key: &str, value: Value) {
        b.insert(key.to_owned(), value);
    }

    fn del(b: &mut Body, key: &str) {
        b.remove(key);
    }

    fn dish_mut(b: &mut Body, i: usize) -> &mut Body {
        match b.get_mut("dish_list").and_then(|l| l.get_mut(i)) {
            Some(Value::Object(d)) => d,
            _ => panic!("no dish {i}"),
        }
    }

    fn set_dish(b: &mut Body, i: usize, key: &str, value: Value) {
        set(dish_mut(b, i), key, value);
    }

    fn props_mut(b: &mut Body) -> &mut Body {
        match dish_mut(b, 0).get_mut("properties") {
            Some(Value::Object(p)) => p,
            _ => panic!("no properties"),
        }
    }

    fn summary(violations: &[Violation]) -> Vec<(String, Rule)> {
        violations
            .iter()
            .map(|v| (v.path.clone(), v.rule))
            .collect()
    }

    struct Case {
        name: &'static str,
        base: fn() -> Body,
        edit: fn(&mut Body),
        mode: Mode,
        expect: &'static [(&'static str, Rule)],
    }

    const fn case(
        name: &'static str,
        base: fn() -> Body,
        edit: fn(&mut Body),
        expect: &'static [(&'static str, Rule)],
    ) -> Case {
        Case {
            name,
            base,
            edit,
            mode: Mode::Full,
            expect,
        }
    }

    const fn draft(
        name: &'static str,
        base: fn() -> Body,
        edit: fn(&mut Body),
        expect: &'static [(&'static str, Rule)],
    ) -> Case {
        Case {
            mode: Mode::FieldsOnly,
            ..case(name, base, edit, expect)
        }
    }

    fn run(cases: &[Case]) {
        let mut failures = Vec::new();
        for c in cases {
            let mut body = (c.base)();
            (c.edit)(&mut body);
            let got = summary(&validate_object(&body, c.mode));
            let want: Vec<(String, Rule)> = c
                .expect
                .iter()
                .map(|(p, r)| ((*p).to_owned(), *r))
                .collect();
            if got != want {
                failures.push(format!("{}: got {got:?}, want {want:?}", c.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn keep(_: &mut Body) {}

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
        assert!(body.starts_with("sp_mchid: Str(32), sp_appid: Str(32), channel_id: Str(32), sub_mchid: Str(32), sub_appid: Str(32), openid: Str(32), sub_openid: Str(32), out_shop_no: Str(32), login_token: Str(256), order_entry: Str(256), total_amount: Int(0, 1000000000000000)"), "{body}");
        assert!(body.ends_with("transaction_id: Str(64), out_trade_no: Str(64), out_order_no: Str(64), out_table_no: Str(16), people_count: Int(1, 2147483647), dish_list: Dishes"), "{body}");
        let dish = kinds(&DISH).join(", ");
        assert!(dish.starts_with("out_dish_no: Str(48), name: Str(128), price: Int(0, 1000000000000000), unit: Enum(16, "), "{dish}");
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

    fn arb_key() -> impl Strategy<Value = String> {
        let known: Vec<&str> = [BODY_FIELDS, DISH_FIELDS, PROPERTY_FIELDS].concat();
        prop_oneof![
            prop::sample::select(known).prop_map(str::to_owned),
            ".{0,8}",
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            prop::sample::select(vec!["PAY_SUCCESS", "BY_WEIGHT", "2024-06-08T10:34:56Z"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((arb_key(), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let full = validate(&v, Mode::Full);
            prop_assert_eq!(&full, &validate(&v, Mode::Full));
            let fields = validate(&v, Mode::FieldsOnly);
            prop_assert!(fields.iter().all(|x| x.rule != Rule::Required));
        }

        #[test]
        fn one_changed_field_only_affects_itself(i in 0..BODY_FIELDS.len(), v in arb_json()) {
            let field = BODY_FIELDS[i];
            let mut b = sp();
            set(&mut b, field, v);
            for x in validate_object(&b, Mode::Full) {
                let ok = x.path.is_empty() || x.path.starts_with(field) || x.path == "sub_appid";
                prop_assert!(ok, "{} after changing {}", x, field);
            }
        }

        #[test]
        fn counts_with_two_decimals_pass(k in 1u32..100_000_000) {
            let mut b = sp();
            set_dish(&mut b, 4, "count", json!(f64::from(k) / 100.0));
            prop_assert_eq!(validate_object(&b, Mode::Full), vec![]);
        }

        #[test]
        fn counts_with_three_decimals_fail(m in 0u32..10_000_000, d in 1u32..10) {
            let k = m * 10 + d;
            let mut b = sp();
            set_dish(&mut b, 4, "count", json!(f64::from(k) / 1000.0));
            let got = summary(&validate_object(&b, Mode::Full));
            prop_assert_eq!(got, vec![("dish_list[4].count".to_owned(), Rule::Decimals)]);
        }
    }
}
