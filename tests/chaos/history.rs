//! The order-history checker: pure, no broker, no sandbox.
//!
//! Input: per order, its records as they sit in the partition (record values in offset order,
//! redeliveries, duplicates and bad events included), the sandbox's accepted posts of the order in
//! arrival order, the dead-letter topic, and the group's committed offsets. From the records it
//! computes with the pure core (`OrderState::apply`, `event::decode`, `Defaults::default()`) the
//! snapshot after every prefix of the order's events, and then checks:
//!
//! - every accepted body is the snapshot of some prefix, and that prefix never shrinks: the match
//!   is the smallest prefix ≥ the current one with that body (a reverted update makes the same
//!   body the snapshot of several prefixes); an older one → `older_after_newer`, none →
//!   `unknown_body`. A repeat of the current body is a duplicate, allowed.
//! - every status run of the order (prefixes with the same status) ends with its last snapshot
//!   accepted: the last post matched to a prefix ≤ the run's end must have the run's last body
//!   (`missing_status_snapshot`).
//! - the final accepted body is the full merge (`final_body`); an order that should have posts
//!   and has none is `missing_order`.
//! - every bad event (decode error or rejected by the pure core, or a record without key) is in
//!   the DLQ with its reason (`missing_dead_letter`, `wrong_dead_letter_reason`); nothing else is
//!   (`spurious_dead_letter`).
//! - the group's committed offsets reach the end of every input partition (`uncommitted`).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use catering_sync::event::{decode, DecodeLimits};
use catering_sync::snapshot::{Defaults, OrderState, Outcome};
use serde_json::Value;

/// Every kind of violation, in report order.
pub const KINDS: [&str; 9] = [
    "older_after_newer",
    "unknown_body",
    "missing_status_snapshot",
    "final_body",
    "missing_order",
    "missing_dead_letter",
    "wrong_dead_letter_reason",
    "spurious_dead_letter",
    "uncommitted",
];

/// One order's records (values) in partition order, keyed by the order number.
#[derive(Debug, Clone)]
pub struct OrderRecords {
    pub no: String,
    pub values: Vec<Vec<u8>>,
}

/// One accepted post, as the sandbox recorded it.
#[derive(Debug, Clone)]
pub struct Post {
    pub body: Option<Value>,
    pub status: Option<String>,
}

impl From<&catering_sync::sandbox::store::RecordedPost> for Post {
    fn from(p: &catering_sync::sandbox::store::RecordedPost) -> Self {
        Post {
            body: p.body.clone(),
            status: p.status.clone(),
        }
    }
}

/// One record of the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// `catering-sync.reason`.
    pub reason: Option<String>,
}

/// Everything the checker looks at.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub orders: Vec<OrderRecords>,
    /// Values of records produced without a key (each must be dead-lettered `invalid_event`).
    pub unkeyed: Vec<Vec<u8>>,
    /// Accepted posts per order number, in arrival order.
    pub posts: HashMap<String, Vec<Post>>,
    pub dead_letters: Vec<DeadLetter>,
    /// End offset (last + 1) of every input partition.
    pub ends: BTreeMap<i32, i64>,
    /// The group's committed offsets (`None`: nothing committed).
    pub committed: BTreeMap<i32, Option<i64>>,
}

/// A violation, with where it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: &'static str,
    pub order: String,
    /// Index of the post (0-based, arrival order) when it concerns one.
    pub post: Option<usize>,
    /// The prefix (number of the order's records) accepted before this post.
    pub before: Option<usize>,
    /// The prefix whose snapshot this post's body is (the largest one, for an older body).
    pub this: Option<usize>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} order {}", self.kind, self.order)?;
        if let Some(p) = self.post {
            write!(f, " post #{p}")?;
        }
        if let Some(b) = self.before {
            write!(f, " prefix before {b}")?;
        }
        if let Some(t) = self.this {
            write!(f, " prefix of this body {t}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The checker's result for one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub orders: usize,
    /// Records produced (good, duplicate and bad).
    pub events: usize,
    /// Bad records among them.
    pub bad_events: usize,
    pub posts: usize,
    /// Posts repeating the body of the order's previous accepted post.
    pub duplicates: usize,
    pub dead_letters: usize,
    pub violations: Vec<Violation>,
}

impl Report {
    pub fn count(&self, kind: &str) -> usize {
        self.violations.iter().filter(|v| v.kind == kind).count()
    }

    /// Violations by kind (only kinds that occurred), in [`KINDS`] order.
    pub fn by_kind(&self) -> Vec<(&'static str, usize)> {
        KINDS
            .iter()
            .map(|k| (*k, self.count(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Orders with at least one violation of `kind`.
    pub fn orders_with(&self, kind: &str) -> usize {
        let mut v: Vec<&str> = self
            .violations
            .iter()
            .filter(|v| v.kind == kind)
            .map(|v| v.order.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    }

    /// One line: orders, events, posts, duplicates, violations by kind.
    pub fn line(&self, scenario: &str) -> String {
        let kinds = self.by_kind();
        let mut by = String::new();
        for (i, (k, n)) in kinds.iter().enumerate() {
            if i > 0 {
                by.push_str(", ");
            }
            let _ = write!(by, "{k}={n} ({} orders)", self.orders_with(k));
        }
        if by.is_empty() {
            by.push_str("none");
        }
        format!(
            "chaos {scenario}: orders={} events={} (bad {}) posts={} duplicates={} dead_letters={} violations={} [{by}]",
            self.orders,
            self.events,
            self.bad_events,
            self.posts,
            self.duplicates,
            self.dead_letters,
            self.violations.len(),
        )
    }

    /// The first `n` violations, one per line.
    pub fn details(&self, n: usize) -> String {
        let mut s = String::new();
        for v in self.violations.iter().take(n) {
            let _ = writeln!(s, "  {v}");
        }
        if self.violations.len() > n {
            let _ = writeln!(s, "  … and {} more", self.violations.len() - n);
        }
        s
    }

    /// 0 violations of any kind.
    pub fn clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the pure core makes of one order's records.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Snapshot body (JSON) after each prefix: `prefixes[k]` after the first `k` records;
    /// `None` while the order has no status.
    pub prefixes: Vec<Option<Value>>,
    /// Status of each prefix.
    pub statuses: Vec<Option<String>>,
    /// Bad records: (value, expected dead-letter reason).
    pub bad: Vec<(Vec<u8>, &'static str)>,
    /// Records that were duplicates or stale (ignored by the core).
    pub ignored: usize,
}

/// The prefixes of one order's records, as the pure core computes them.
pub fn expected(values: &[Vec<u8>]) -> Expected {
    let defaults = Defaults::default();
    let limits = DecodeLimits::default();
    let mut state = OrderState::default();
    let body = |s: &OrderState| -> Option<Value> {
        s.body()
            .map(|b| serde_json::from_slice(&b.bytes).expect("a body is JSON"))
    };
    let status = |v: &Option<Value>| -> Option<String> {
        v.as_ref()
            .and_then(|b| b.get("status"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut prefixes = vec![None];
    let mut statuses = vec![None];
    let mut bad = Vec::new();
    let mut ignored = 0;
    for value in values {
        match decode(value, &limits) {
            Err(e) => bad.push((value.clone(), e.reason.as_str())),
            Ok(event) => match state.apply(&event, &defaults) {
                Outcome::Applied { .. } => {}
                Outcome::Ignored(_) => ignored += 1,
                Outcome::Rejected(r) => bad.push((value.clone(), r.reason())),
            },
        }
        let b = body(&state);
        statuses.push(status(&b));
        prefixes.push(b);
    }
    Expected {
        prefixes,
        statuses,
        bad,
        ignored,
    }
}

/// The smallest prefix ≥ `from` whose snapshot is `body`.
fn match_from(prefixes: &[Option<Value>], from: usize, body: &Value) -> Option<usize> {
    (from..prefixes.len()).find(|&k| prefixes[k].as_ref() == Some(body))
}

/// The largest prefix < `before` whose snapshot is `body`.
fn match_before(prefixes: &[Option<Value>], before: usize, body: &Value) -> Option<usize> {
    (0..before.min(prefixes.len()))
        .rev()
        .find(|&k| prefixes[k].as_ref() == Some(body))
}

/// Top-level fields where `a` and `b` differ (for details).
fn differing_fields(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["(not objects)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// The prefix trace of an order's posts for details: `1 3 3 2! 5` (`!` older, `?` unknown).
fn trace(marks: &[String]) -> String {
    const MAX: usize = 24;
    let mut s = marks
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if marks.len() > MAX {
        let _ = write!(s, " …(+{})", marks.len() - MAX);
    }
    s
}

/// Checks one order's posts against its records; appends violations, returns (posts, duplicates).
pub fn check_order(
    no: &str,
    exp: &Expected,
    posts: &[Post],
    violations: &mut Vec<Violation>,
) -> (usize, usize) {
    let n = exp.prefixes.len() - 1;
    let final_body = exp.prefixes[n].clone();
    if posts.is_empty() {
        if final_body.is_some() {
            violations.push(Violation {
                kind: "missing_order",
                order: no.into(),
                post: None,
                before: None,
                this: None,
                detail: format!(
                    "no accepted post; {n} records, final status {:?}",
                    exp.statuses[n]
                ),
            });
        }
        return (0, 0);
    }
    let mut cur = 0usize;
    // Prefix each accepted post matched (None: a violation), and marks for the trace.
    let mut matched: Vec<Option<usize>> = Vec::with_capacity(posts.len());
    let mut marks: Vec<String> = Vec::with_capacity(posts.len());
    let mut duplicates = 0;
    let mut pending: Vec<Violation> = Vec::new();
    let mut previous: Option<&Value> = None;
    for (j, post) in posts.iter().enumerate() {
        let Some(body) = post.body.as_ref() else {
            pending.push(Violation {
                kind: "unknown_body",
                order: no.into(),
                post: Some(j),
                before: Some(cur),
                this: None,
                detail: "the sandbox recorded no body".into(),
            });
            matched.push(None);
            marks.push("?".into());
            continue;
        };
        if previous == Some(body) {
            duplicates += 1;
        }
        previous = Some(body);
        if let Some(k) = match_from(&exp.prefixes, cur, body) {
            cur = k;
            matched.push(Some(k));
            marks.push(k.to_string());
        } else if let Some(k) = match_before(&exp.prefixes, cur, body) {
            pending.push(Violation {
                kind: "older_after_newer",
                order: no.into(),
                post: Some(j),
                before: Some(cur),
                this: Some(k),
                detail: format!(
                    "{:?} body of prefix {k} after {:?} body of prefix {cur} (of {n} records)",
                    exp.statuses[k], exp.statuses[cur]
                ),
            });
            matched.push(None);
            marks.push(format!("{k}!"));
        } else {
            let reference = exp.prefixes[cur]
                .as_ref()
                .or(final_body.as_ref())
                .cloned()
                .unwrap_or(Value::Null);
            pending.push(Violation {
                kind: "unknown_body",
                order: no.into(),
                post: Some(j),
                before: Some(cur),
                this: None,
                detail: format!(
                    "status {:?}, differs from prefix {cur}'s snapshot in {:?}",
                    post.status,
                    differing_fields(body, &reference)
                ),
            });
            matched.push(None);
            marks.push("?".into());
        }
    }
    // Status runs: maximal ranges of prefixes with the same (present) status.
    let mut k = 1;
    while k <= n {
        let Some(status) = exp.statuses[k].clone() else {
            k += 1;
            continue;
        };
        let mut end = k;
        while end < n && exp.statuses[end + 1].as_deref() == Some(status.as_str()) {
            end += 1;
        }
        let last_seen = matched
            .iter()
            .enumerate()
            .filter_map(|(j, m)| m.filter(|&p| p <= end).map(|p| (j, p)))
            .next_back();
        let ok =
            last_seen.is_some_and(|(j, _)| posts[j].body.as_ref() == exp.prefixes[end].as_ref());
        if !ok {
            pending.push(Violation {
                kind: "missing_status_snapshot",
                order: no.into(),
                post: last_seen.map(|(j, _)| j),
                before: last_seen.map(|(_, p)| p),
                this: Some(end),
                detail: format!(
                    "the last {status} snapshot (prefix {end}) was never the accepted one before the order moved on"
                ),
            });
        }
        k = end + 1;
    }
    let last = posts.last().and_then(|p| p.body.as_ref());
    if last != final_body.as_ref() {
        let detail = match (last, final_body.as_ref()) {
            (Some(l), Some(f)) => format!(
                "last accepted body differs from the full merge (prefix {n}) in {:?}",
                differing_fields(l, f)
            ),
            _ => "last accepted body or full merge missing".into(),
        };
        pending.push(Violation {
            kind: "final_body",
            order: no.into(),
            post: Some(posts.len() - 1),
            before: None,
            this: None,
            detail,
        });
    }
    let t = trace(&marks);
    for mut v in pending {
        let _ = write!(v.detail, "; posts' prefixes: [{t}]");
        violations.push(v);
    }
    (posts.len(), duplicates)
}

/// A dead letter's identity: the original record's key and value.
type DlqKey = (Option<Vec<u8>>, Vec<u8>);

/// Runs every check.
pub fn check(input: &Input) -> Report {
    let mut report = Report {
        orders: input.orders.len(),
        events: input.orders.iter().map(|o| o.values.len()).sum::<usize>() + input.unkeyed.len(),
        dead_letters: input.dead_letters.len(),
        ..Report::default()
    };
    // Expected dead letters: (key, value) → reason, and whether it was seen.
    let mut expected_dlq: HashMap<DlqKey, (&'static str, bool)> = HashMap::new();
    for o in &input.orders {
        let exp = expected(&o.values);
        for (value, reason) in &exp.bad {
            expected_dlq.insert(
                (Some(o.no.as_bytes().to_vec()), value.clone()),
                (reason, false),
            );
        }
        report.bad_events += exp.bad.len();
        let posts = input.posts.get(&o.no).map(Vec::as_slice).unwrap_or(&[]);
        let (p, d) = check_order(&o.no, &exp, posts, &mut report.violations);
        if std::env::var("CHAOS_DUMP").ok().as_deref() == Some(o.no.as_str()) {
            for v in &o.values {
                eprintln!("DUMP record {}", String::from_utf8_lossy(v));
            }
            for p in posts {
                eprintln!("DUMP post {:?}", p.body);
            }
        }
        report.posts += p;
        report.duplicates += d;
    }
    for value in &input.unkeyed {
        expected_dlq.insert((None, value.clone()), ("invalid_event", false));
        report.bad_events += 1;
    }
    for (i, dl) in input.dead_letters.iter().enumerate() {
        let key = (dl.key.clone(), dl.value.clone().unwrap_or_default());
        let order = dl
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_else(|| "(no key)".into());
        match expected_dlq.get_mut(&key) {
            Some((reason, seen)) => {
                *seen = true;
                if dl.reason.as_deref() != Some(*reason) {
                    report.violations.push(Violation {
                        kind: "wrong_dead_letter_reason",
                        order,
                        post: None,
                        before: None,
                        this: None,
                        detail: format!(
                            "dead letter #{i}: reason {:?}, expected {reason}",
                            dl.reason
                        ),
                    });
                }
            }
            None => report.violations.push(Violation {
                kind: "spurious_dead_letter",
                order,
                post: None,
                before: None,
                this: None,
                detail: format!(
                    "dead letter #{i} (reason {:?}) is no bad record: {}",
                    dl.reason,
                    String::from_utf8_lossy(&key.1)
                        .chars()
                        .take(120)
                        .collect::<String>()
                ),
            }),
        }
    }
    let mut missing: Vec<(String, &'static str, String)> = expected_dlq
        .iter()
        .filter(|(_, (_, seen))| !seen)
        .map(|((k, v), (reason, _))| {
            (
                k.as_ref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_else(|| "(no key)".into()),
                *reason,
                String::from_utf8_lossy(v).chars().take(120).collect(),
            )
        })
        .collect();
    missing.sort();
    for (order, reason, value) in missing {
        report.violations.push(Violation {
            kind: "missing_dead_letter",
            order,
            post: None,
            before: None,
            this: None,
            detail: format!("expected reason {reason}: {value}"),
        });
    }
    for (p, end) in &input.ends {
        let c = input.committed.get(p).copied().flatten();
        if c.is_none_or(|c| c < *end) {
            report.violations.push(Violation {
                kind: "uncommitted",
                order: format!("(partition {p})"),
                post: None,
                before: None,
                this: None,
                detail: format!("committed {c:?}, end {end}"),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dish(i: usize, price: i64) -> Value {
        json!({"out_dish_no": format!("D{i}"), "name": format!("菜{i}"), "price": price, "unit": "BY_SHARE", "count": 1})
    }

    fn ev(no: &str, id: &str, seq: Option<u64>, patch: Value) -> Vec<u8> {
        let mut e = json!({"event_id": id, "out_order_no": no, "occurred_at": "2026-11-27T12:30:00+08:00", "patch": patch});
        if let Some(s) = seq {
            e["seq"] = json!(s);
        }
        e.to_string().into_bytes()
    }

    fn create(no: &str) -> Vec<u8> {
        ev(
            no,
            "c",
            Some(1),
            json!({
            "sp_mchid": "1900000001", "sp_appid": "wx8888888888888888", "sub_mchid": "1900000109",
            "openid": "oUser", "out_shop_no": "SHOP-1", "login_token": "LT", "order_entry": "pages/menu/index",
            "total_amount": 1000, "discount_amount": 0, "user_amount": 1000,
            "status": "CREATE_DEAL", "dish_list": [dish(0, 1000)]}),
        )
    }
    fn update(no: &str) -> Vec<u8> {
        ev(
            no,
            "u",
            Some(2),
            json!({"total_amount": 3000, "user_amount": 3000, "dish_list": [dish(0, 1000), dish(1, 2000)]}),
        )
    }
    fn revert(no: &str) -> Vec<u8> {
        ev(
            no,
            "r",
            Some(3),
            json!({"total_amount": 1000, "user_amount": 1000, "dish_list": [dish(0, 1000)]}),
        )
    }
    fn pay(no: &str) -> Vec<u8> {
        ev(
            no,
            "p",
            Some(4),
            json!({"status": "PAY_SUCCESS", "pay_time": "2026-11-27T12:40:01+08:00",
            "transaction_id": "4200000000000001", "out_trade_no": "P1"}),
        )
    }
    fn regression(no: &str) -> Vec<u8> {
        ev(no, "back", None, json!({"status": "CREATE_DEAL"}))
    }
    fn negative(no: &str) -> Vec<u8> {
        ev(no, "neg", None, json!({"total_amount": null}))
    }

    /// An order: create, update, revert, pay, a duplicate of the update, two bad events.
    fn order(no: &str) -> OrderRecords {
        OrderRecords {
            no: no.into(),
            values: vec![
                create(no),
                update(no),
                revert(no),
                negative(no),
                pay(no),
                update(no),
                regression(no),
                b"{not json".to_vec(),
            ],
        }
    }

    fn body_at(o: &OrderRecords, k: usize) -> Post {
        let exp = expected(&o.values);
        let body = exp.prefixes[k].clone().expect("a body");
        Post {
            status: body["status"].as_str().map(str::to_owned),
            body: Some(body),
        }
    }

    /// A complete, clean input for `o` whose posts are the snapshots of `prefixes`.
    fn input(o: &OrderRecords, prefixes: &[usize]) -> Input {
        let posts = prefixes.iter().map(|&k| body_at(o, k)).collect();
        let key = Some(o.no.as_bytes().to_vec());
        Input {
            orders: vec![o.clone()],
            unkeyed: vec![b"{\"x\":1}".to_vec()],
            posts: HashMap::from([(o.no.clone(), posts)]),
            dead_letters: vec![
                DeadLetter {
                    key: key.clone(),
                    value: Some(negative(&o.no)),
                    reason: Some("invalid_snapshot".into()),
                },
                DeadLetter {
                    key: key.clone(),
                    value: Some(regression(&o.no)),
                    reason: Some("status_regression".into()),
                },
                DeadLetter {
                    key,
                    value: Some(b"{not json".to_vec()),
                    reason: Some("malformed".into()),
                },
                DeadLetter {
                    key: None,
                    value: Some(b"{\"x\":1}".to_vec()),
                    reason: Some("invalid_event".into()),
                },
            ],
            ends: BTreeMap::from([(0, 9)]),
            committed: BTreeMap::from([(0, Some(9))]),
        }
    }

    fn kinds(r: &Report) -> Vec<&'static str> {
        r.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn prefixes_follow_the_pure_core() {
        let o = order("H1");
        let exp = expected(&o.values);
        assert_eq!(exp.prefixes.len(), 9);
        assert_eq!(exp.prefixes[0], None);
        // The reverted update gives the create's body back.
        assert_eq!(exp.prefixes[3], exp.prefixes[1]);
        assert_ne!(exp.prefixes[2], exp.prefixes[1]);
        // Bad records and the duplicate change nothing.
        assert_eq!(exp.prefixes[4], exp.prefixes[3]);
        assert_eq!(exp.prefixes[8], exp.prefixes[5]);
        assert_eq!(exp.statuses[5].as_deref(), Some("PAY_SUCCESS"));
        let reasons: Vec<&str> = exp.bad.iter().map(|b| b.1).collect();
        assert_eq!(
            reasons,
            ["invalid_snapshot", "status_regression", "malformed"]
        );
        assert_eq!(exp.ignored, 1);
    }

    #[test]
    fn a_faithful_history_is_clean_with_duplicates_and_a_revert() {
        let o = order("H2");
        // create, update, create again (the revert), a duplicate, pay, a duplicate.
        let r = check(&input(&o, &[1, 2, 3, 3, 5, 5]));
        assert!(r.clean(), "{}", r.details(10));
        assert_eq!((r.posts, r.duplicates, r.bad_events), (6, 2, 4));
        // Coalesced: the update skipped (same status), the revert's body equals the first.
        let r = check(&input(&o, &[1, 5]));
        assert!(r.clean(), "{}", r.details(10));
    }

    #[test]
    fn an_older_body_after_a_newer_one_is_caught() {
        let o = order("H3");
        // The update's body after the revert's (which equals the create's).
        let r = check(&input(&o, &[1, 2, 3, 2, 5]));
        assert_eq!(kinds(&r), ["older_after_newer"], "{}", r.details(10));
        let v = &r.violations[0];
        assert_eq!((v.post, v.before, v.this), (Some(3), Some(3), Some(2)));
        // A CREATE_DEAL body after PAY_SUCCESS: older, and the order's final body is wrong.
        let r = check(&input(&o, &[1, 2, 3, 5, 3]));
        assert_eq!(
            kinds(&r),
            ["older_after_newer", "final_body"],
            "{}",
            r.details(10)
        );
        println!("{}", r.line("unit"));
        println!("{}", r.details(10));
    }

    #[test]
    fn an_unknown_body_is_caught() {
        let o = order("H4");
        let mut i = input(&o, &[1, 3, 5]);
        let posts = i.posts.get_mut("H4").unwrap();
        posts[1].body.as_mut().unwrap()["total_amount"] = json!(1234);
        let r = check(&i);
        assert_eq!(kinds(&r), ["unknown_body"], "{}", r.details(10));
        assert!(r.violations[0].detail.contains("total_amount"));
    }

    #[test]
    fn a_skipped_last_snapshot_of_a_status_is_caught() {
        let o = order("H5");
        // The revert's body (last CREATE_DEAL) never accepted after the update's: PAY came next.
        let r = check(&input(&o, &[1, 2, 5]));
        assert_eq!(kinds(&r), ["missing_status_snapshot"], "{}", r.details(10));
        assert_eq!(r.violations[0].this, Some(4));
        // No CREATE_DEAL at all.
        let r = check(&input(&o, &[5]));
        assert_eq!(kinds(&r), ["missing_status_snapshot"], "{}", r.details(10));
    }

    #[test]
    fn a_wrong_final_body_is_caught() {
        let o = order("H6");
        let r = check(&input(&o, &[1, 2, 3]));
        assert_eq!(
            kinds(&r),
            ["missing_status_snapshot", "final_body"],
            "{}",
            r.details(10)
        );
    }

    #[test]
    fn a_missing_order_is_caught() {
        let o = order("H7");
        let mut i = input(&o, &[]);
        i.posts.clear();
        let r = check(&i);
        assert_eq!(kinds(&r), ["missing_order"], "{}", r.details(10));
    }

    #[test]
    fn dead_letters_are_checked_both_ways() {
        let o = order("H8");
        let mut i = input(&o, &[1, 3, 5]);
        // A good event dead-lettered, a bad one missing, one with the wrong reason.
        i.dead_letters.push(DeadLetter {
            key: Some(b"H8".to_vec()),
            value: Some(create("H8")),
            reason: Some("rejected".into()),
        });
        i.dead_letters.remove(0);
        i.dead_letters[0].reason = Some("invalid_snapshot".into());
        let r = check(&i);
        let mut k = kinds(&r);
        k.sort_unstable();
        assert_eq!(
            k,
            [
                "missing_dead_letter",
                "spurious_dead_letter",
                "wrong_dead_letter_reason"
            ],
            "{}",
            r.details(10)
        );
        // A bad record dead-lettered twice (redelivered after a crash) is fine.
        let mut i = input(&o, &[1, 3, 5]);
        let again = i.dead_letters[0].clone();
        i.dead_letters.push(again);
        assert!(check(&i).clean());
    }

    #[test]
    fn uncommitted_partitions_are_caught() {
        let o = order("H9");
        let mut i = input(&o, &[1, 3, 5]);
        i.ends.insert(1, 4);
        i.committed.insert(0, Some(8));
        i.committed.insert(1, None);
        let r = check(&i);
        assert_eq!(
            kinds(&r),
            ["uncommitted", "uncommitted"],
            "{}",
            r.details(10)
        );
    }
}
