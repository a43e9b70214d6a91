//! `schemas/` and the code agree: every fixture of `tests/fixtures/` gets the same accept/reject
//! verdict from the code and from a JSON Schema validator (draft 2020-12, formats on), and the
//! changelog records the code writes validate against `order-state.schema.json`.

use std::path::Path;

use catering_sync::event::{decode, DecodeLimits};
use catering_sync::snapshot::{Defaults, OrderState};
use catering_sync::wechatpay::rules::{self, Mode};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(Path::new(ROOT).join("schemas").join(name)).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{name}"
    );
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name} is a valid schema: {e}"))
}

fn fixtures(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures").join(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks one fixture: the code's verdict and paths as expected; the schema's verdict the same,
/// unless the fixture names a rule JSON Schema cannot express.
fn check(
    f: &Value,
    input: &Value,
    code: Result<(), (String, Vec<String>)>,
    schema: &jsonschema::Validator,
) -> bool {
    let name = f["name"].as_str().unwrap();
    let accept = f["expect"] == "accept";
    match (&code, accept) {
        (Ok(()), true) => {}
        (Err((reason, paths)), false) => {
            assert_eq!(reason, f["reason"].as_str().unwrap(), "{name}");
            for p in f["paths"].as_array().into_iter().flatten() {
                assert!(
                    paths.iter().any(|x| x == p.as_str().unwrap()),
                    "{name}: expected a violation at {p}, got {paths:?}"
                );
            }
        }
        (got, _) => panic!("{name}: code said {got:?}, fixture expects {}", f["expect"]),
    }
    if f.get("schema_limitation").is_some() {
        return false;
    }
    assert_eq!(
        schema.is_valid(input),
        accept,
        "{name}: the schema disagrees with the code"
    );
    true
}

#[test]
fn event_fixtures_agree_between_code_and_schema() {
    let schema = validator("order-event.schema.json");
    let all = fixtures("events.jsonl");
    let mut compared = 0;
    for f in &all {
        let event = &f["event"];
        let code = decode(
            &serde_json::to_vec(event).unwrap(),
            &DecodeLimits::default(),
        )
        .map(|_| ())
        .map_err(|e| {
            (
                e.reason.as_str().to_string(),
                e.violations.iter().map(|v| v.path.clone()).collect(),
            )
        });
        compared += check(f, event, code, &schema) as usize;
    }
    assert!(
        all.len() >= 40 && compared >= all.len() - 5,
        "{compared} of {} compared",
        all.len()
    );
    assert!(
        all.iter().any(|f| f["expect"] == "accept") && all.iter().any(|f| f["expect"] == "reject")
    );
}

#[test]
fn body_fixtures_agree_between_code_and_schema() {
    let schema = validator("sync-status-request.schema.json");
    let all = fixtures("bodies.jsonl");
    let mut compared = 0;
    for f in &all {
        let body = &f["body"];
        let violations = rules::validate(body, Mode::Full);
        let code = if violations.is_empty() {
            Ok(())
        } else {
            Err((
                "invalid_body".to_string(),
                violations.iter().map(|v| v.path.clone()).collect(),
            ))
        };
        compared += check(f, body, code, &schema) as usize;
    }
    assert!(
        all.len() >= 40 && compared >= all.len() - 5,
        "{compared} of {} compared",
        all.len()
    );
}

#[test]
fn state_records_written_by_the_code_match_the_state_schema() {
    let schema = validator("order-state.schema.json");
    let mut checked = 0;
    for dishes in [0, 5] {
        let mut state = OrderState::default();
        for (k, value) in catering_sync::bench::order_events(7, dishes)
            .iter()
            .enumerate()
        {
            let event = decode(value, &DecodeLimits::default()).unwrap();
            state.apply(&event, &Defaults::default());
            if k == 1 {
                if let Some(b) = state.body() {
                    state.mark_acked(&b, 1_764_218_096_000);
                }
            }
            let record = serde_json::to_value(state.to_record(&event.out_order_no)).unwrap();
            let errors: Vec<String> = schema.iter_errors(&record).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{errors:?}\n{record}");
            checked += 1;
        }
    }
    // A draft, too.
    let draft = decode(br#"{"event_id":"d","out_order_no":"O","occurred_at":"2026-11-27T12:30:00+08:00","patch":{"people_count":2}}"#, &DecodeLimits::default()).unwrap();
    let mut state = OrderState::default();
    state.apply(&draft, &Defaults::default());
    assert!(schema.is_valid(&serde_json::to_value(state.to_record("O")).unwrap()));
    // And the schema is not a rubber stamp.
    let mut bad = serde_json::to_value(state.to_record("O")).unwrap();
    bad["applied_event_ids"][0] = Value::from("not-hex");
    assert!(!schema.is_valid(&bad));
    assert_eq!(checked, 4);
}
