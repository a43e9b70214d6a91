//! The input contract (SPEC §2): ≥ 30 distinct kinds of malformed or invalid input, each with its
//! classification and the path of what is wrong. Nothing panics.

use catering_sync::event::{decode, DecodeLimits, DecodeReason};
use serde_json::{json, Value};

pub fn valid() -> Value {
    json!({
        "event_id": "0b8f5c1e-8a55-4a0c-9d0e-6a3c1f7e2b10",
        "out_order_no": "20261127123456789",
        "occurred_at": "2026-11-27T12:34:56+08:00",
        "seq": 3,
        "patch": {"status": "CREATE_DEAL", "total_amount": 8800, "dish_list": [{"out_dish_no": "D1", "name": "宫保鸡丁", "price": 3800, "unit": "BY_SHARE", "count": 1}]}
    })
}

fn with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = valid();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// (name, bytes, reason, a path that must be among the violations)
pub fn cases() -> Vec<(&'static str, Vec<u8>, DecodeReason, &'static str)> {
    use DecodeReason::{InvalidEvent as I, Malformed as M};
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let mut huge = valid();
    huge["patch"]["order_entry"] = json!("x".repeat(2 << 20));
    let dup_nested = br#"{"event_id":"e","out_order_no":"1","occurred_at":"2026-11-27T12:34:56+08:00","patch":{"status":"CREATE_DEAL","status":"PAY_SUCCESS"}}"#;
    vec![
        (
            "invalid UTF-8",
            b"{\"event_id\":\"\xff\xfe\"}".to_vec(),
            M,
            "",
        ),
        (
            "truncated JSON",
            br#"{"event_id":"e1","out_order_no":"#.to_vec(),
            M,
            "",
        ),
        ("empty value", b"".to_vec(), M, ""),
        ("whitespace only", b"  \n ".to_vec(), M, ""),
        ("a JSON array", b"[1,2,3]".to_vec(), M, ""),
        ("a JSON string", b"\"hello\"".to_vec(), M, ""),
        ("a JSON number", b"42".to_vec(), M, ""),
        ("JSON null", b"null".to_vec(), M, ""),
        ("10,000-level nesting", deep.into_bytes(), M, ""),
        ("a 2 MiB value", serde_json::to_vec(&huge).unwrap(), M, ""),
        (
            "duplicate top-level keys",
            br#"{"event_id":"a","event_id":"b"}"#.to_vec(),
            M,
            "",
        ),
        (
            "duplicate keys inside the patch",
            dup_nested.to_vec(),
            M,
            "",
        ),
        (
            "trailing garbage",
            [serde_json::to_vec(&valid()).unwrap(), b"}".to_vec()].concat(),
            M,
            "",
        ),
        (
            "BOM before the object",
            [
                b"\xef\xbb\xbf".to_vec(),
                serde_json::to_vec(&valid()).unwrap(),
            ]
            .concat(),
            M,
            "",
        ),
        (
            "missing event_id",
            with(|v| {
                v.as_object_mut().unwrap().remove("event_id");
            }),
            I,
            "event_id",
        ),
        (
            "empty event_id",
            with(|v| v["event_id"] = json!("")),
            I,
            "event_id",
        ),
        (
            "event_id of 65 characters",
            with(|v| v["event_id"] = json!("e".repeat(65))),
            I,
            "event_id",
        ),
        (
            "numeric event_id",
            with(|v| v["event_id"] = json!(7)),
            I,
            "event_id",
        ),
        (
            "missing out_order_no",
            with(|v| {
                v.as_object_mut().unwrap().remove("out_order_no");
            }),
            I,
            "out_order_no",
        ),
        (
            "out_order_no over 64 bytes",
            with(|v| v["out_order_no"] = json!("9".repeat(65))),
            I,
            "out_order_no",
        ),
        (
            "emoji in out_order_no",
            with(|v| v["out_order_no"] = json!("A🍜")),
            I,
            "out_order_no",
        ),
        (
            "occurred_at without offset",
            with(|v| v["occurred_at"] = json!("2026-11-27T12:34:56")),
            I,
            "occurred_at",
        ),
        (
            "occurred_at not a time",
            with(|v| v["occurred_at"] = json!("yesterday")),
            I,
            "occurred_at",
        ),
        ("seq as a string", with(|v| v["seq"] = json!("3")), I, "seq"),
        ("negative seq", with(|v| v["seq"] = json!(-1)), I, "seq"),
        ("fractional seq", with(|v| v["seq"] = json!(1.5)), I, "seq"),
        (
            "missing patch",
            with(|v| {
                v.as_object_mut().unwrap().remove("patch");
            }),
            I,
            "patch",
        ),
        (
            "patch is an array",
            with(|v| v["patch"] = json!([])),
            I,
            "patch",
        ),
        (
            "unknown patch field (typo)",
            with(|v| v["patch"]["totl_amount"] = json!(1)),
            I,
            "patch.totl_amount",
        ),
        (
            "string amount",
            with(|v| v["patch"]["total_amount"] = json!("8800")),
            I,
            "patch.total_amount",
        ),
        (
            "negative amount",
            with(|v| v["patch"]["total_amount"] = json!(-1)),
            I,
            "patch.total_amount",
        ),
        (
            "fractional fen",
            with(|v| v["patch"]["user_amount"] = json!(88.5)),
            I,
            "patch.user_amount",
        ),
        (
            "emoji in a dish name",
            with(|v| v["patch"]["dish_list"][0]["name"] = json!("拉面🍜")),
            I,
            "patch.dish_list[0].name",
        ),
        (
            "status outside the enum",
            with(|v| v["patch"]["status"] = json!("REFUNDED")),
            I,
            "patch.status",
        ),
        (
            "both sp_mchid and channel_id",
            with(|v| {
                v["patch"]["sp_mchid"] = json!("1900000001");
                v["patch"]["channel_id"] = json!("CH1");
            }),
            I,
            "patch",
        ),
        (
            "null inside a dish",
            with(|v| v["patch"]["dish_list"][0]["price"] = Value::Null),
            I,
            "patch.dish_list[0].price",
        ),
        (
            "count with three decimals",
            with(|v| v["patch"]["dish_list"][0]["count"] = json!(1.125)),
            I,
            "patch.dish_list[0].count",
        ),
        (
            "patch.out_order_no differs",
            with(|v| v["patch"]["out_order_no"] = json!("OTHER")),
            I,
            "patch.out_order_no",
        ),
        (
            "patch.out_order_no removed",
            with(|v| v["patch"]["out_order_no"] = Value::Null),
            I,
            "patch.out_order_no",
        ),
        (
            "dish_list not an array",
            with(|v| v["patch"]["dish_list"] = json!({"name": "x"})),
            I,
            "patch.dish_list",
        ),
        (
            "over-long login_token",
            with(|v| v["patch"]["login_token"] = json!("t".repeat(257))),
            I,
            "patch.login_token",
        ),
    ]
}

#[test]
fn malformed_and_invalid_events_are_classified_with_paths() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} kinds", cases.len());
    for (name, bytes, reason, path) in cases {
        let err = decode(&bytes, &DecodeLimits::default()).expect_err(name);
        assert_eq!(err.reason, reason, "{name}: {err}");
        assert!(
            err.violations.iter().any(|v| v.path == path),
            "{name}: expected a violation at {path:?}, got {err}"
        );
        assert!(
            !err.to_string().contains(&"t".repeat(257)),
            "{name}: values are not echoed"
        );
    }
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let bytes = with(|v| {
        v["event_id"] = json!("");
        v["occurred_at"] = json!("noon");
        v["seq"] = json!("x");
        v["patch"]["total_amount"] = json!("1");
        v["patch"]["status"] = json!("DONE");
    });
    let err = decode(&bytes, &DecodeLimits::default()).unwrap_err();
    let paths: Vec<&str> = err.violations.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "event_id",
            "occurred_at",
            "seq",
            "patch.total_amount",
            "patch.status"
        ],
        "{err}"
    );
}

#[test]
fn valid_events_decode_including_forward_compatible_fields_and_removals() {
    let e = decode(
        &serde_json::to_vec(&valid()).unwrap(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!((e.event_id.len(), e.seq), (36, Some(3)));
    let unknown_top_level = with(|v| v["schema_version"] = json!(2));
    assert!(decode(&unknown_top_level, &DecodeLimits::default()).is_ok());
    let null_seq_and_removal = with(|v| {
        v["seq"] = Value::Null;
        v["patch"]["out_table_no"] = Value::Null;
    });
    let e = decode(&null_seq_and_removal, &DecodeLimits::default()).unwrap();
    assert_eq!(e.seq, None);
    assert_eq!(e.patch.out_table_no, Some(None), "null is a removal");
    let empty_patch = with(|v| v["patch"] = json!({}));
    assert!(decode(&empty_patch, &DecodeLimits::default()).is_ok());
    // The size limit is configurable.
    let small = DecodeLimits {
        max_bytes: 64,
        ..Default::default()
    };
    assert_eq!(
        decode(&serde_json::to_vec(&valid()).unwrap(), &small)
            .unwrap_err()
            .reason,
        DecodeReason::Malformed
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let seed = serde_json::to_vec(&valid()).unwrap();
    for _ in 0..5_000 {
        let mut b = seed.clone();
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(0..b.len());
            match rng.gen_range(0..3) {
                0 => b[i] = rng.gen(),
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, rng.gen()),
            }
        }
        let _ = decode(&b, &DecodeLimits::default());
    }
}
