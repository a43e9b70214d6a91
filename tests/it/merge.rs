//! Merging and posting (SPEC §3–§4), one test per rule, and the property tests.

use catering_sync::event::{decode, DecodeLimits, OrderEvent};
use catering_sync::snapshot::order::validate;
use catering_sync::snapshot::{
    may_coalesce, Body, Defaults, Ignored, OrderState, Outcome, Rejected, StateRecord, Status,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn event(id: &str, seq: Option<u64>, at: &str, patch: Value) -> OrderEvent {
    let mut v = json!({"event_id": id, "out_order_no": "O-1", "occurred_at": at, "patch": patch});
    if let Some(s) = seq {
        v["seq"] = json!(s);
    }
    decode(&serde_json::to_vec(&v).unwrap(), &DecodeLimits::default())
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

fn base() -> Value {
    json!({"sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "out_shop_no": "S1", "login_token": "tok", "order_entry": "pages/menu",
        "total_amount": 5000, "discount_amount": 0, "user_amount": 5000,
        "dish_list": [{"out_dish_no": "D1", "name": "宫保鸡丁", "price": 5000, "unit": "BY_SHARE", "count": 1}]})
}

fn created() -> Value {
    let mut b = base();
    b["status"] = json!("CREATE_DEAL");
    b
}

fn paid() -> Value {
    json!({"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:40:01+08:00", "transaction_id": "4200000001", "out_trade_no": "P1"})
}

const T1: &str = "2026-11-27T12:30:00+08:00";
const T2: &str = "2026-11-27T12:40:00+08:00";

fn applied(state: &mut OrderState, e: &OrderEvent) -> bool {
    match state.apply(e, &Defaults::default()) {
        Outcome::Applied { post_due } => post_due,
        other => panic!("{}: {other:?}", e.event_id),
    }
}

#[test]
fn patches_set_replace_and_null_removes() {
    let mut s = OrderState::default();
    applied(
        &mut s,
        &event(
            "e1",
            None,
            T1,
            json!({"out_table_no": "A1", "people_count": 2}),
        ),
    );
    assert_eq!(s.snapshot().out_table_no.as_deref(), Some("A1"));
    assert_eq!(
        s.snapshot().out_order_no.as_deref(),
        Some("O-1"),
        "the order number comes from the event"
    );
    applied(
        &mut s,
        &event(
            "e2",
            None,
            T1,
            json!({"out_table_no": null, "people_count": 3}),
        ),
    );
    assert_eq!(
        (
            s.snapshot().out_table_no.as_deref(),
            s.snapshot().people_count
        ),
        (None, Some(3))
    );
}

#[test]
fn dish_list_is_replaced_whole() {
    let mut s = OrderState::default();
    applied(&mut s, &event("e1", None, T1, base()));
    applied(
        &mut s,
        &event(
            "e2",
            None,
            T1,
            json!({"dish_list": [{"name": "米饭"}, {"name": "汤"}]}),
        ),
    );
    let snapshot = s.snapshot();
    let names: Vec<_> = snapshot
        .dish_list
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["米饭", "汤"]);
    assert!(
        s.snapshot().dish_list.as_ref().unwrap()[0].price.is_none(),
        "no field survives from the old list"
    );
}

#[test]
fn duplicate_event_id_is_ignored_and_changes_nothing() {
    let mut s = OrderState::default();
    let e = event("e1", None, T1, created());
    assert!(applied(&mut s, &e));
    let before = s.clone();
    assert_eq!(
        s.apply(&e, &Defaults::default()),
        Outcome::Ignored(Ignored::DuplicateEvent)
    );
    assert_eq!(s, before);
}

#[test]
fn stale_seq_is_ignored_and_absent_seq_is_never_stale() {
    let mut s = OrderState::default();
    applied(
        &mut s,
        &event("e5", Some(5), T1, json!({"people_count": 5})),
    );
    assert_eq!(
        s.apply(
            &event("e4", Some(4), T1, json!({"people_count": 4})),
            &Defaults::default()
        ),
        Outcome::Ignored(Ignored::StaleSeq)
    );
    assert_eq!(
        s.apply(
            &event("e5b", Some(5), T1, json!({"people_count": 4})),
            &Defaults::default()
        ),
        Outcome::Ignored(Ignored::StaleSeq)
    );
    applied(&mut s, &event("nx", None, T1, json!({"people_count": 6})));
    assert_eq!((s.snapshot().people_count, s.last_seq), (Some(6), Some(5)));
}

#[test]
fn status_change_sets_action_time_from_occurred_at_unless_the_patch_sets_it() {
    let mut s = OrderState::default();
    applied(&mut s, &event("e1", None, T1, created()));
    assert_eq!(s.snapshot().action_time.as_deref(), Some(T1));
    applied(
        &mut s,
        &event("e2", None, T2, json!({"out_table_no": "B2"})),
    );
    assert_eq!(
        s.snapshot().action_time.as_deref(),
        Some(T1),
        "no status change, no new action_time"
    );
    let mut p = paid();
    p["action_time"] = json!("2026-11-27T12:45:00+08:00");
    applied(&mut s, &event("e3", None, T2, p));
    assert_eq!(
        s.snapshot().action_time.as_deref(),
        Some("2026-11-27T12:45:00+08:00")
    );
}

#[test]
fn status_only_moves_forward_and_a_regression_leaves_the_state_unchanged() {
    let mut s = OrderState::default();
    applied(&mut s, &event("e1", None, T1, created()));
    applied(&mut s, &event("e2", None, T2, paid()));
    let before = s.clone();
    for (id, patch) in [
        ("back", json!({"status": "CREATE_DEAL"})),
        ("removed", json!({"status": null})),
    ] {
        match s.apply(&event(id, None, T2, patch), &Defaults::default()) {
            Outcome::Rejected(r @ Rejected::StatusRegression { .. }) => {
                assert_eq!(r.reason(), "status_regression")
            }
            other => panic!("{id}: {other:?}"),
        }
        assert_eq!(s, before, "{id}");
    }
}

#[test]
fn an_order_may_start_at_pay_success() {
    let mut s = OrderState::default();
    let mut p = base();
    p.as_object_mut()
        .unwrap()
        .extend(paid().as_object().unwrap().clone());
    assert!(applied(&mut s, &event("e1", None, T1, p)));
    assert_eq!(s.snapshot().status, Some(Status::PaySuccess));
}

#[test]
fn a_draft_without_status_is_validated_field_by_field_but_not_posted() {
    let mut s = OrderState::default();
    assert!(!applied(&mut s, &event("e1", None, T1, base())));
    assert!(s.body().is_none());
}

#[test]
fn an_invalid_snapshot_is_rejected_with_every_violation_and_the_state_unchanged() {
    let mut s = OrderState::default();
    applied(&mut s, &event("e1", None, T1, json!({"people_count": 2})));
    let before = s.clone();
    match s.apply(
        &event("e2", None, T1, json!({"status": "PAY_SUCCESS"})),
        &Defaults::default(),
    ) {
        Outcome::Rejected(r @ Rejected::InvalidSnapshot(_)) => {
            assert_eq!(r.reason(), "invalid_snapshot");
            let detail = r.detail();
            for field in [
                "sub_mchid",
                "out_shop_no",
                "dish_list",
                "pay_time",
                "transaction_id",
                "out_trade_no",
            ] {
                assert!(detail.contains(&format!("{field}:")), "{field} in {detail}");
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s, before);
}

#[test]
fn defaults_fill_missing_fields_but_never_make_both_variants() {
    let defaults = Defaults {
        sp_mchid: Some("1900000001".into()),
        sp_appid: Some("wx1".into()),
        sub_mchid: Some("1900000109".into()),
        ..Default::default()
    };
    let mut p = created();
    for k in ["sp_mchid", "sp_appid", "sub_mchid"] {
        p.as_object_mut().unwrap().remove(k);
    }
    let mut s = OrderState::default();
    assert!(matches!(
        s.apply(&event("e1", None, T1, p), &defaults),
        Outcome::Applied { post_due: true }
    ));
    assert_eq!(
        (
            s.snapshot().sp_mchid.as_deref(),
            s.snapshot().sub_mchid.as_deref()
        ),
        (Some("1900000001"), Some("1900000109"))
    );
    let mut s = OrderState::default();
    s.apply(
        &event("c1", None, T1, json!({"channel_id": "CH1"})),
        &defaults,
    );
    assert_eq!(
        (
            s.snapshot().channel_id.as_deref(),
            s.snapshot().sp_mchid.as_deref()
        ),
        (Some("CH1"), None)
    );
    let explicit = Defaults {
        sub_mchid: Some("9999".into()),
        ..Default::default()
    };
    let mut s = OrderState::default();
    s.apply(&event("e1", None, T1, created()), &explicit);
    assert_eq!(
        s.snapshot().sub_mchid.as_deref(),
        Some("1900000109"),
        "the event's value wins"
    );
}

#[test]
fn a_post_is_due_only_when_the_body_differs_from_the_acknowledged_one() {
    let mut s = OrderState::default();
    assert!(applied(&mut s, &event("e1", None, T1, created())));
    let body = s.body().unwrap();
    s.mark_acked(&body, 1);
    assert!(!s.post_due());
    assert!(
        !applied(&mut s, &event("e2", None, T1, json!({"out_shop_no": "S1"}))),
        "a change to the same value posts nothing"
    );
    assert!(applied(
        &mut s,
        &event("e3", None, T1, json!({"out_table_no": "A9"}))
    ));
    assert!(applied(&mut s, &event("e4", None, T2, paid())));
    let body = s.body().unwrap();
    s.mark_acked(&body, 42);
    assert_eq!(
        s.final_acked_at_ms,
        Some(42),
        "the tombstone clock starts at the PAY_SUCCESS ack"
    );
}

#[test]
fn coalescing_is_allowed_only_within_one_status() {
    assert!(may_coalesce(Status::CreateDeal, Status::CreateDeal));
    assert!(may_coalesce(Status::PaySuccess, Status::PaySuccess));
    assert!(!may_coalesce(Status::CreateDeal, Status::PaySuccess));
}

#[test]
fn the_body_is_deterministic_in_api_order_without_nulls_with_integer_fen() {
    let mut s = OrderState::default();
    let mut p = created();
    p["dish_list"][0]["count"] = json!(1.50);
    p["out_table_no"] = Value::Null;
    applied(&mut s, &event("e1", None, T1, p));
    let body = s.body().unwrap();
    let text = std::str::from_utf8(&body.bytes).unwrap();
    assert!(text.starts_with(r#"{"sp_mchid":"1900000001","sp_appid":"wx8888888888888888","sub_mchid":"1900000109","openid":"#), "{text}");
    assert!(!text.contains("null"));
    assert!(
        text.contains(
            r#""total_amount":5000,"discount_amount":0,"user_amount":5000,"status":"CREATE_DEAL""#
        ),
        "{text}"
    );
    assert!(text.contains(r#""count":1.5}"#), "{text}");
    assert_eq!(body.digest_hex().len(), 64);
    // Through the changelog record and back: same bytes.
    let record: StateRecord =
        serde_json::from_slice(&serde_json::to_vec(&s.to_record("O-1")).unwrap()).unwrap();
    let restored = OrderState::from_record(record).unwrap();
    assert_eq!(restored, s);
    assert_eq!(restored.body().unwrap(), body);
}

/// A random but plausible event stream for one order.
fn stream() -> impl Strategy<Value = Vec<(Value, bool)>> {
    let step = prop_oneof![
        Just(base()),
        Just(json!({"status": "CREATE_DEAL"})),
        Just(paid()),
        Just(json!({"status": "CREATE_DEAL", "out_table_no": "Z"})),
        (1u32..20).prop_map(|n| json!({"people_count": n})),
        Just(json!({"out_table_no": null})),
        (1i64..100_000).prop_map(|a| json!({"total_amount": a, "user_amount": a, "discount_amount": 0})),
        (1usize..4).prop_map(|n| json!({"dish_list": (0..n).map(|i| json!({"out_dish_no": format!("D{i}"), "name": "面", "price": 100, "unit": "BY_SHARE", "count": 1})).collect::<Vec<_>>()})),
        Just(json!({"dish_list": [{"name": "无价"}]})),
    ];
    proptest::collection::vec((step, any::<bool>()), 1..14)
}

fn events_of(steps: &[(Value, bool)]) -> Vec<OrderEvent> {
    steps
        .iter()
        .enumerate()
        .map(|(i, (patch, with_seq))| {
            event(
                &format!("ev-{i}"),
                with_seq.then_some(i as u64 + 1),
                T1,
                patch.clone(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn applying_an_event_twice_equals_applying_it_once(steps in stream()) {
        let mut once = OrderState::default();
        let mut twice = OrderState::default();
        for e in events_of(&steps) {
            once.apply(&e, &Defaults::default());
            twice.apply(&e, &Defaults::default());
            twice.apply(&e, &Defaults::default());
            prop_assert_eq!(&once, &twice);
        }
    }

    /// Rejected events are dead-lettered and committed, and a deliberate replay of one must be
    /// able to apply, so only events that were not rejected are redelivered here.
    #[test]
    fn redelivering_any_prefix_after_the_stream_changes_nothing(steps in stream(), cut in any::<prop::sample::Index>()) {
        let events = events_of(&steps);
        let mut s = OrderState::default();
        let mut delivered = Vec::new();
        for e in &events {
            if !matches!(s.apply(e, &Defaults::default()), Outcome::Rejected(_)) {
                delivered.push(e.clone());
            }
        }
        let after = s.clone();
        for e in &delivered[..cut.index(delivered.len() + 1)] {
            let outcome = s.apply(e, &Defaults::default());
            prop_assert!(matches!(outcome, Outcome::Ignored(_)), "{:?}", outcome);
        }
        prop_assert_eq!(s, after);
    }

    #[test]
    fn status_never_moves_back_and_every_applied_snapshot_with_a_status_is_valid(steps in stream()) {
        let mut s = OrderState::default();
        let mut highest: Option<Status> = None;
        for e in events_of(&steps) {
            if let Outcome::Applied { .. } = s.apply(&e, &Defaults::default()) {
                prop_assert!(s.snapshot().status >= highest, "{:?} after {:?}", s.snapshot().status, highest);
                highest = s.snapshot().status;
                if s.snapshot().status.is_some() {
                    prop_assert!(validate(&s.snapshot()).is_empty());
                }
            }
            prop_assert_eq!(s.snapshot().status, highest);
        }
    }

    #[test]
    fn serialisation_is_stable(steps in stream()) {
        let mut s = OrderState::default();
        for e in events_of(&steps) {
            s.apply(&e, &Defaults::default());
        }
        let a = serde_json::to_vec(&s.snapshot()).unwrap();
        let reparsed: catering_sync::snapshot::Snapshot = serde_json::from_slice(&a).unwrap();
        prop_assert_eq!(serde_json::to_vec(&reparsed).unwrap(), a);
        prop_assert_eq!(Body::of(&s.snapshot()), Body::of(&reparsed));
    }
}
