//! Tests: property tests: arbitrary JSON never panics and is reported deterministically.

use super::*;

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
