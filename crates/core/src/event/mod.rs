//! The input contract (SPEC §2): bytes of a Kafka record value → a typed [`OrderEvent`], or every
//! violation found, classified as `malformed` or `invalid_event`.
//!
//! Nothing in the input can make decoding panic or allocate without bound: the size is checked
//! before parsing, nesting depth is bounded, duplicate keys are refused.

mod json;

use std::fmt;

use serde_json::{Map, Value};

use crate::rules::{self, Mode};
use crate::snapshot::Patch;

pub use crate::snapshot::OrderEvent;
pub use json::parse_strict;

/// Limits applied before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest record value accepted (default 1 MiB).
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects (default 16; a valid event nests 5 deep).
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_depth: 16,
        }
    }
}

/// Largest `event_id`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 64;

/// The dead-letter reason of an event that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeReason {
    /// Not a UTF-8 JSON object within the limits.
    Malformed,
    /// A JSON object that breaks the event contract.
    InvalidEvent,
}

impl DecodeReason {
    /// The reason as written to `catering-sync.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidEvent => "invalid_event",
        }
    }
}

/// One problem with an event, with the path of the field (empty for the record as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventViolation {
    /// `event_id`, `patch.dish_list[1].name`, … or empty.
    pub path: String,
    /// What is wrong; never the value itself.
    pub message: String,
}

impl fmt::Display for EventViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "record: {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why an event was refused: the reason and every violation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// `malformed` or `invalid_event`.
    pub reason: DecodeReason,
    /// Every problem, in field order.
    pub violations: Vec<EventViolation>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.reason.as_str())?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

fn malformed(message: impl Into<String>) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Malformed,
        violations: vec![EventViolation {
            path: String::new(),
            message: message.into(),
        }],
    }
}

/// Decode one record value.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<OrderEvent, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(malformed(format!(
            "value is {} bytes, max {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| malformed(format!("not UTF-8: {e}")))?;
    let value = parse_strict(text, limits.max_depth)
        .map_err(|e| malformed(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(malformed(format!(
            "not a JSON object but {}",
            rules::type_name(&value)
        )));
    };
    decode_object(obj)
}

struct Collector(Vec<EventViolation>);

impl Collector {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(EventViolation {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn string<'a>(&mut self, obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
        match obj.get(key) {
            None | Some(Value::Null) => self.push(key, "is required"),
            Some(Value::String(s)) if s.is_empty() => self.push(key, "must not be empty"),
            Some(Value::String(s)) => return Some(s),
            Some(other) => self.push(
                key,
                format!("must be a string, got {}", rules::type_name(other)),
            ),
        }
        None
    }
}

fn decode_object(mut obj: Map<String, Value>) -> Result<OrderEvent, DecodeError> {
    let mut c = Collector(Vec::new());
    let event_id = c.string(&obj, "event_id").map(str::to_string);
    if let Some(id) = &event_id {
        if id.chars().count() > MAX_EVENT_ID_CHARS {
            c.push(
                "event_id",
                format!(
                    "is {} characters, max {MAX_EVENT_ID_CHARS}",
                    id.chars().count()
                ),
            );
        }
    }
    let out_order_no = c.string(&obj, "out_order_no").map(str::to_string);
    if let Some(no) = &out_order_no {
        // The same limits as the API field, checked by the body rules.
        let probe = Map::from_iter([("out_order_no".to_string(), Value::String(no.clone()))]);
        for v in rules::validate_object(&probe, Mode::FieldsOnly) {
            c.push("out_order_no", v.message);
        }
    }
    let occurred_at = c.string(&obj, "occurred_at").map(str::to_string);
    if occurred_at
        .as_deref()
        .is_some_and(|t| !rules::is_rfc3339(t))
    {
        c.push(
            "occurred_at",
            "must be an RFC 3339 timestamp with offset, e.g. 2026-11-27T12:34:56+08:00",
        );
    }
    let seq = match obj.get("seq") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(other) => {
            c.push(
                "seq",
                format!(
                    "must be an unsigned integer, got {}",
                    rules::type_name(other)
                ),
            );
            None
        }
    };
    let patch = match obj.remove("patch") {
        None | Some(Value::Null) => {
            c.push("patch", "is required");
            None
        }
        Some(Value::Object(p)) => check_patch(&mut c, p, out_order_no.as_deref()),
        Some(other) => {
            c.push(
                "patch",
                format!("must be an object, got {}", rules::type_name(&other)),
            );
            None
        }
    };
    match (event_id, out_order_no, occurred_at, patch) {
        (Some(event_id), Some(out_order_no), Some(occurred_at), Some(patch)) if c.0.is_empty() => {
            Ok(OrderEvent {
                event_id,
                out_order_no,
                occurred_at,
                seq,
                patch,
            })
        }
        _ => Err(DecodeError {
            reason: DecodeReason::InvalidEvent,
            violations: c.0,
        }),
    }
}

/// Field-level body rules on the non-null members (nulls are RFC 7396 removals), then the typed
/// patch. `patch.out_order_no` may not be removed and must equal the event's.
fn check_patch(
    c: &mut Collector,
    patch: Map<String, Value>,
    out_order_no: Option<&str>,
) -> Option<Patch> {
    match patch.get("out_order_no") {
        Some(Value::Null) => c.push("patch.out_order_no", "cannot be removed"),
        Some(Value::String(s)) if Some(s.as_str()) != out_order_no => c.push(
            "patch.out_order_no",
            "differs from the event's out_order_no",
        ),
        _ => {}
    }
    // The removals are set aside (their keys only) while the rules look at the values.
    let removals: Vec<String> = patch
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    let mut values = patch;
    values.retain(|_, v| !v.is_null());
    let before = c.0.len();
    for v in rules::validate_object(&values, Mode::FieldsOnly) {
        let path = if v.path.is_empty() {
            "patch".to_string()
        } else {
            format!("patch.{}", v.path)
        };
        c.push(&path, format!("{} ({})", v.message, v.rule.as_str()));
    }
    if c.0.len() > before {
        return None;
    }
    values.extend(removals.into_iter().map(|k| (k, Value::Null)));
    match serde_json::from_value::<Patch>(Value::Object(values)) {
        Ok(p) => Some(p),
        Err(e) => {
            // The rules accepted it, so this is a rules/type mismatch: still an invalid event.
            c.push("patch", format!("cannot be read: {e}"));
            None
        }
    }
}
