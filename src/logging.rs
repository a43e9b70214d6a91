//! Log lines that ship: one flat JSON object per line, the shape log pipelines (Loki, Elastic,
//! Cloud Logging, Datadog) index without parsing rules. `timestamp` (RFC 3339 UTC, three fraction
//! digits), `level`, `message`, the static `service` and `version`, `target`, in that order; then,
//! by name, every field of the enclosing spans (an order task's `partition`, `offset`,
//! `out_order_no`, `trace_id`; an inner span's value wins) and of the event itself, all at the
//! top level. An event field never replaces one of the fixed keys
//! above: it is written as `field.<name>` instead.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The keys every line has, in this order.
const FIXED: [&str; 6] = [
    "timestamp",
    "level",
    "message",
    "service",
    "version",
    "target",
];

/// The flat JSON event format. Spans must be formatted with
/// [`tracing_subscriber::fmt::format::JsonFields`], so their stored fields are JSON objects.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let timestamp = time::OffsetDateTime::now_utc()
            .format(TIMESTAMP)
            .unwrap_or_default();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("message".into(), Value::String(String::new()));
        line.insert("service".into(), "catering-sync".into());
        line.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    for (k, v) in fields {
                        insert(&mut line, k, v, false);
                    }
                }
            }
        }
        event.record(&mut Fields(&mut line));
        // The fixed keys first, in their order; then the fields, by name.
        let mut text = String::with_capacity(256);
        text.push('{');
        for key in FIXED {
            if let Some(v) = line.remove(key) {
                push_pair(&mut text, key, &v)?;
            }
        }
        for (k, v) in &line {
            push_pair(&mut text, k, v)?;
        }
        text.push('}');
        writeln!(writer, "{text}")
    }
}

/// RFC 3339 UTC with exactly three fraction digits (`2026-12-07T12:00:00.123Z`).
const TIMESTAMP: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

fn push_pair(text: &mut String, key: &str, value: &Value) -> fmt::Result {
    if text.len() > 1 {
        text.push(',');
    }
    text.push_str(&serde_json::to_string(key).map_err(|_| fmt::Error)?);
    text.push(':');
    text.push_str(&serde_json::to_string(value).map_err(|_| fmt::Error)?);
    Ok(())
}

/// Insert a field at the top level; a fixed key is kept (the field goes to `field.<name>`),
/// except `message` from the event itself.
fn insert(line: &mut Map<String, Value>, key: String, value: Value, message_ok: bool) {
    if FIXED.contains(&key.as_str()) && !(message_ok && key == "message") {
        line.insert(format!("field.{key}"), value);
    } else {
        line.insert(key, value);
    }
}

/// Records an event's fields into the line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        insert(self.0, field.name().into(), value.into(), true);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        insert(self.0, field.name().into(), value.into(), true);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        insert(self.0, field.name().into(), value.into(), true);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        insert(self.0, field.name().into(), value.into(), true);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), Value::Number);
        insert(self.0, field.name().into(), v, true);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        insert(self.0, field.name().into(), value.to_string().into(), true);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        insert(
            self.0,
            field.name().into(),
            format!("{value:?}").into(),
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn a_line_is_one_flat_object_with_the_span_fields_at_the_top() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("order", partition = 3, out_order_no = "A-1");
            let _entered = span.enter();
            tracing::warn!(attempt = 2, level = "x", request_id = %"08-1234", "retrying");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "retrying");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["service"], "catering-sync");
        assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(line["partition"], 3);
        assert_eq!(line["out_order_no"], "A-1");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["request_id"], "08-1234");
        assert_eq!(
            line["field.level"], "x",
            "a field never replaces a fixed key"
        );
        let ts = line["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok()
                && ts.ends_with('Z')
                && ts.len() == "2026-12-07T12:00:00.123Z".len(),
            "{ts}"
        );
        assert!(
            text.starts_with("{\"timestamp\":")
                && text.find("\"level\"") < text.find("\"message\""),
            "the fixed keys first, in order: {text}"
        );
        assert!(
            line.get("fields").is_none() && line.get("span").is_none(),
            "flat: {line}"
        );
    }
}
