//! Deployment artefacts: every PromQL expression (alerts, dashboard) names only exported metrics and
//! labels; every alert judges each deployment (namespace, job) on its own and links a runbook
//! heading of deploy/README.md.

use super::*;

const README: &str = "deploy/README.md";

/// Every alert's `runbook_url` is this base plus the anchor of a heading of deploy/README.md
/// (one base, so an overlay can replace it in one go).
const RUNBOOK_BASE: &str =
    "https://github.com/catering-sync/catering-sync/blob/main/deploy/README.md#";

/// One vector selector naming a catering-sync metric (`catering_sync_…`, or a process collector
/// `process_…` one): the name and its label matchers (label, operator, value).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// The index just past the string literal starting at `i` (", ' or `).
fn skip_string(b: &[u8], i: usize, expr: &str) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        if b[j] == b'\\' && quote != b'`' {
            j += 1;
        }
        j += 1;
    }
    assert!(j < b.len(), "unterminated string in {expr}");
    j + 1
}

/// Parses `{a="x", b!~"y"}` starting at `open`; returns the matchers and the index past `}`.
fn matchers(expr: &str, open: usize) -> (Vec<(String, String, String)>, usize) {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        assert!(i < b.len(), "unterminated {{ in {expr}");
        if b[i] == b'}' {
            return (out, i + 1);
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let label = &expr[start..i];
        assert!(!label.is_empty(), "a label name at {start} in {expr}");
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| expr[i..].starts_with(op))
            .unwrap_or_else(|| panic!("a matcher operator after {label} in {expr}"));
        i += op.len();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        assert!(
            i < b.len() && matches!(b[i], b'"' | b'\'' | b'`'),
            "a quoted value for {label} in {expr}"
        );
        let end = skip_string(b, i, expr);
        let value = expr[i + 1..end - 1].to_string();
        out.push((label.to_string(), op.to_string(), value));
        i = end;
    }
}

/// Every selector of a `catering_sync_…` or `process_…` metric in `expr` (hand-written scanner:
/// identifiers of [A-Za-z0-9_:], string literals skipped).
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            i = skip_string(b, i, expr);
            continue;
        }
        let starts_word = (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b':')
            && (i == 0 || !is_ident(b[i - 1]));
        if !starts_word {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word = &expr[start..i];
        if !(word.starts_with("catering_sync_") || word.starts_with("process_")) {
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut found = Vec::new();
        if j < b.len() && b[j] == b'{' {
            let (m, end) = matchers(expr, j);
            found = m;
            i = end;
        }
        out.push(Selector {
            name: word.to_string(),
            matchers: found,
        });
    }
    out
}

/// What the service exports: per family, its type and every label with the values its
/// pre-created series carry (per-partition families touched once so their labels show).
struct Exported {
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn exported() -> Exported {
    let (registry, m) = Metrics::standalone();
    m.events_consumed.with_label_values(&["0"]).inc();
    m.consumer_lag.with_label_values(&["0"]).set(0);
    m.committed_offset.with_label_values(&["0"]).set(0);
    let text = metrics::render(&registry);
    let mut types = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let series = line.split_whitespace().next().unwrap();
        let (name, pairs) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let family = if types.contains_key(name) {
            name
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| types.contains_key(*b)))
                .unwrap_or(name)
        };
        let entry = labels.entry(family.to_string()).or_default();
        for pair in pairs.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            if k != "le" {
                entry
                    .entry(k.to_string())
                    .or_default()
                    .insert(v.trim_matches('"').to_string());
            }
        }
    }
    Exported { types, labels }
}

impl Exported {
    /// The family a series name belongs to, or why it does not belong to any. Besides
    /// `metrics::NAMES`: the process collector's `metrics::PROCESS_NAMES`, and
    /// `metrics::MEMORY_LIMIT`, exported only under a memory limit (so not by a test process).
    fn family(&self, name: &str) -> Result<String, String> {
        if NAMES.contains(&name)
            || metrics::PROCESS_NAMES.contains(&name)
            || name == metrics::MEMORY_LIMIT
        {
            return Ok(name.to_string());
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if NAMES.contains(&base) {
                    return match self.types.get(base).map(String::as_str) {
                        Some("histogram") => Ok(base.to_string()),
                        other => Err(format!("{name}: {base} is a {other:?}, not a histogram")),
                    };
                }
            }
        }
        Err(format!(
            "{name} is not in metrics::NAMES (nor metrics::PROCESS_NAMES, nor metrics::MEMORY_LIMIT)"
        ))
    }

    /// Problems with one selector: an unknown name, a label the family does not have, or a
    /// value its label never takes.
    fn check(&self, s: &Selector, problems: &mut Vec<String>) -> Option<String> {
        let family = match self.family(&s.name) {
            Ok(f) => f,
            Err(e) => {
                problems.push(e);
                return None;
            }
        };
        let labels = self.labels.get(&family).cloned().unwrap_or_default();
        for (label, op, value) in &s.matchers {
            if SCRAPE_LABELS.contains(&label.as_str())
                || (label == "le" && s.name.ends_with("_bucket"))
            {
                continue;
            }
            let Some(values) = labels.get(label) else {
                problems.push(format!("{}: no label {label}", s.name));
                continue;
            };
            let literal = op == "=" || op == "!=";
            if literal && label != "partition" && !values.contains(value) {
                problems.push(format!(
                    "{}: {label}{op}\"{value}\" but {label} is one of {values:?}",
                    s.name
                ));
            }
        }
        Some(family)
    }
}

/// PromQL aggregation operators.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// How an aggregation groups: `by (…)`, `without (…)`, or neither (every label aggregated away).
#[derive(Debug, PartialEq)]
enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
    Neither,
}

/// The index of the first non-whitespace byte at or after `i`.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The identifier starting at `i` ("" if none).
fn word_at(expr: &str, i: usize) -> &str {
    let b = expr.as_bytes();
    let mut j = i;
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    &expr[i..j]
}

/// The index past the `)` matching the `(` at `open` (string literals skipped).
fn matching_paren(expr: &str, open: usize) -> usize {
    let b = expr.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i, expr);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced ( in {expr}")
}

/// A `by (…)` or `without (…)` clause at `i` (after whitespace): the grouping and the index past
/// its `)`.
fn grouping_at(expr: &str, i: usize) -> Option<(Grouping, usize)> {
    let b = expr.as_bytes();
    let i = skip_ws(b, i);
    let keyword = word_at(expr, i);
    if keyword != "by" && keyword != "without" {
        return None;
    }
    let open = skip_ws(b, i + keyword.len());
    if open >= b.len() || b[open] != b'(' {
        return None;
    }
    let close = expr[open..]
        .find(')')
        .map(|k| open + k)
        .unwrap_or_else(|| panic!("unterminated ( in {expr}"));
    let labels: Vec<String> = expr[open + 1..close]
        .split(',')
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let grouping = if keyword == "by" {
        Grouping::By(labels)
    } else {
        Grouping::Without(labels)
    };
    Some((grouping, close + 1))
}

/// Every aggregation in `expr` with its grouping, written before the operand
/// (`sum by (a) (…)`) or after it (`sum (…) by (a)`); nested ones included.
fn aggregations(expr: &str) -> Vec<(String, Grouping)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            i = skip_string(b, i, expr);
            continue;
        }
        if b[i] == b'{' {
            // Label matchers: label names there are no operators.
            i = matchers(expr, i).1;
            continue;
        }
        let starts_word = (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b':')
            && (i == 0 || !is_ident(b[i - 1]));
        if !starts_word {
            i += 1;
            continue;
        }
        let word = word_at(expr, i);
        let end = i + word.len();
        i = end;
        if !AGGREGATIONS.contains(&word) {
            continue;
        }
        let mut grouping = Grouping::Neither;
        let mut open = skip_ws(b, end);
        if let Some((g, past)) = grouping_at(expr, end) {
            grouping = g;
            open = skip_ws(b, past);
        }
        if open >= b.len() || b[open] != b'(' {
            continue;
        }
        if grouping == Grouping::Neither {
            if let Some((g, _)) = grouping_at(expr, matching_paren(expr, open)) {
                grouping = g;
            }
        }
        out.push((word.to_string(), grouping));
    }
    out
}

/// The anchor GitHub gives a Markdown heading: lowercase, spaces to `-`, punctuation other than
/// `-` and `_` dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every ATX heading (`#` … `######`) of a Markdown text, fenced code left out.
fn markdown_anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let hashes = line.bytes().take_while(|&c| c == b'#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            out.insert(github_anchor(line[hashes..].trim().trim_end_matches('#')));
        }
    }
    out
}

pub(super) fn alert_rules() -> Vec<Value> {
    let doc = yaml(ALERTS);
    let groups = arr(&doc["groups"], "groups");
    assert_eq!(groups.len(), 1, "one group");
    assert_eq!(groups[0]["name"], "catering-sync");
    arr(&groups[0]["rules"], "rules").clone()
}

pub(super) fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is JSON: {e}"))
}

/// Every panel of the dashboard, rows' nested panels included.
fn panels(dash: &Value) -> Vec<Value> {
    fn walk(list: &Value, out: &mut Vec<Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p.clone());
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// (where, expr) for every PromQL expression of the dashboard: panel targets and the query
/// variables.
pub(super) fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            let expr = str_of(&t["expr"], &format!("panel {title}: expr"));
            out.push((format!("panel {title:?}"), expr.to_string()));
        }
    }
    for v in arr(&dash["templating"]["list"], "templating.list") {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            let q = q.unwrap_or_else(|| panic!("variable {} has a query", v["name"]));
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

#[test]
fn every_promql_expression_names_only_exported_metrics() {
    let exported = exported();
    let mut problems = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut scan = |place: &str, expr: &str, problems: &mut Vec<String>| -> BTreeSet<String> {
        let found = selectors(expr);
        // A process_* series alone could be any application's in the namespace: it is joined
        // with (or divided by) a catering_sync_ one of the same pod.
        assert!(
            found.iter().any(|s| s.name.starts_with("catering_sync_")),
            "{place}: no catering_sync_ metric in {expr} (process_* series need one, e.g. \
             `and on (namespace, job, pod) catering_sync_last_poll_timestamp_seconds`)"
        );
        let mut families = BTreeSet::new();
        for s in &found {
            let before = problems.len();
            if let Some(f) = exported.check(s, problems) {
                families.insert(f);
            }
            for p in &mut problems[before..] {
                *p = format!("{place}: {p}");
            }
        }
        used.extend(families.iter().cloned());
        families
    };

    // Alerts: each required one present, with `for`, severity, summary and description naming
    // the namespace, and a runbook_url (its anchor: every_alert_has_a_runbook_heading_in_deploy_readme).
    let rules = alert_rules();
    let mut by_name = BTreeMap::new();
    for r in &rules {
        let name = str_of(&r["alert"], "alert").to_string();
        let expr = str_of(&r["expr"], &name);
        let families = scan(&format!("alert {name}"), expr, &mut problems);
        assert!(r["for"].is_string(), "{name} has a `for`");
        let sev = str_of(&r["labels"]["severity"], &format!("{name} severity"));
        assert!(["warning", "critical"].contains(&sev), "{name}: {sev}");
        for a in ["summary", "description"] {
            let text = str_of(&r["annotations"][a], &format!("{name} {a}"));
            assert!(text.len() > 20, "{name}: a real {a}");
            assert!(
                text.contains("$labels.namespace"),
                "{name}: the {a} names the deployment's namespace: {text}"
            );
        }
        let url = str_of(
            &r["annotations"]["runbook_url"],
            &format!("{name} runbook_url"),
        );
        assert!(url.starts_with(RUNBOOK_BASE), "{name}: runbook_url {url}");
        by_name.insert(name, (sev.to_string(), expr.to_string(), families));
    }
    for (name, severity) in ALERTS_REQUIRED {
        let (sev, _, _) = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{ALERTS} has {name}"));
        assert_eq!(sev, severity, "{name} severity");
    }
    let uses = |alert: &str, metric: &str| {
        assert!(
            by_name[alert].2.contains(metric),
            "{alert} is about {metric}: {}",
            by_name[alert].1
        );
    };
    uses(
        "CateringSyncDeadLettersRising",
        "catering_sync_dead_letters_total",
    );
    uses(
        "CateringSyncConsumerLagGrowing",
        "catering_sync_consumer_lag",
    );
    uses(
        "CateringSyncCircuitBreakerOpen",
        "catering_sync_circuit_breaker_state",
    );
    uses(
        "CateringSyncConfigurationFault",
        "catering_sync_config_fault",
    );
    uses(
        "CateringSyncResponseSignatureFailures",
        "catering_sync_response_signature_failures_total",
    );
    uses(
        "CateringSyncNoProgress",
        "catering_sync_last_poll_timestamp_seconds",
    );
    uses(
        "CateringSyncNoProgress",
        "catering_sync_events_consumed_total",
    );
    uses(
        "CateringSyncNoPartitionsAssigned",
        "catering_sync_assigned_partitions",
    );
    uses(
        "CateringSyncMemoryNearLimit",
        "process_resident_memory_bytes",
    );
    uses(
        "CateringSyncMemoryNearLimit",
        "catering_sync_memory_limit_bytes",
    );
    uses(
        "CateringSyncDeliveriesLate",
        "catering_sync_event_age_seconds",
    );
    uses(
        "CateringSyncAbsent",
        "catering_sync_last_poll_timestamp_seconds",
    );
    // absent() alone cannot say which of two deployments disappeared: the deployments seen
    // lately, unless seen now (and absent() only as the fallback for none at all).
    let absent = &by_name["CateringSyncAbsent"].1;
    assert!(
        absent.contains("_over_time(") && absent.contains("unless") && absent.contains("absent("),
        "CateringSyncAbsent fires per deployment that disappeared: {absent}"
    );
    assert!(
        by_name["CateringSyncResponseSignatureFailures"]
            .1
            .contains(r#"reason!="signtest""#),
        "WeChat Pay's SIGNTEST probes do not page"
    );

    // Dashboard: variables, panels, data source.
    let dash = dashboard();
    let schema = i64_of(&dash["schemaVersion"], "schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let vars = arr(&dash["templating"]["list"], "templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("dashboard variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    assert_eq!(var("pod")["type"], "query");
    let all = panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &all {
        assert!(ids.insert(p["id"].to_string()), "panel ids unique");
        assert!(p["gridPos"]["w"].is_i64() && p["gridPos"]["h"].is_i64());
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                p["title"]
            );
            assert!(
                !arr(&p["targets"], "targets").is_empty(),
                "panel {} has targets",
                p["title"]
            );
        }
    }
    let titles: Vec<String> = all
        .iter()
        .filter_map(|p| p["title"].as_str())
        .map(str::to_lowercase)
        .collect();
    for want in PANELS_REQUIRED {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "a panel titled …{want}… in {titles:?}"
        );
    }
    let mut dash_used = BTreeSet::new();
    for (place, expr) in dashboard_exprs(&dash) {
        dash_used.extend(scan(&place, &expr, &mut problems));
        // Every panel query follows the namespace variable (the variables' own queries need not).
        if place.starts_with("panel") {
            for s in selectors(&expr) {
                let filtered = s
                    .matchers
                    .iter()
                    .any(|(l, op, v)| l == "namespace" && op == "=~" && v == "$namespace");
                if !filtered {
                    problems.push(format!(
                        "{place}: {} is not filtered by namespace=~\"$namespace\"",
                        s.name
                    ));
                }
            }
        }
    }
    let latency = all
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .is_some_and(|t| t.to_lowercase().contains("post latency"))
        })
        .unwrap();
    let latency_exprs = latency["targets"].to_string();
    assert!(
        latency_exprs.contains("histogram_quantile(0.99")
            && latency_exprs.contains("histogram_quantile(0.5")
            && latency_exprs.contains("catering_sync_post_duration_seconds_bucket"),
        "p50 and p99 from the post-duration histogram: {latency_exprs}"
    );
    // The panels issue 14 asked for, built from the right series (targets as JSON text).
    let targets_of = |want: &str| -> String {
        all.iter()
            .find(|p| {
                p["title"]
                    .as_str()
                    .is_some_and(|t| t.to_lowercase().contains(want))
            })
            .unwrap_or_else(|| panic!("a panel titled …{want}…"))["targets"]
            .to_string()
    };
    for (panel, wants) in [
        (
            "event age",
            &[
                "histogram_quantile(0.5",
                "histogram_quantile(0.99",
                "catering_sync_event_age_seconds_bucket",
            ][..],
        ),
        (
            "consume rate per partition",
            &["rate(catering_sync_events_consumed_total", "partition)"][..],
        ),
        (
            "memory vs limit",
            &[
                "process_resident_memory_bytes",
                "catering_sync_memory_limit_bytes",
            ][..],
        ),
        ("restarts", &["changes(process_start_time_seconds"][..]),
        (
            "version",
            &["catering_sync_build_info", "version, revision"][..],
        ),
    ] {
        let targets = targets_of(panel);
        for want in wants {
            assert!(
                targets.contains(want),
                "panel …{panel}… queries {want}: {targets}"
            );
        }
    }
    assert!(
        all.iter()
            .any(|p| p["type"] == "row" && p["title"] == "Process"),
        "a row titled Process (memory vs limit, restarts, version)"
    );

    assert!(
        problems.is_empty(),
        "unknown metrics or labels:\n{problems:#?}"
    );
    for n in NAMES_REQUIRED {
        assert!(used.contains(n), "{n} is used by an alert or the dashboard");
        assert!(dash_used.contains(n), "{n} is on the dashboard");
    }
    let unused: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| !used.contains(*n))
        .collect();
    if !unused.is_empty() {
        eprintln!("metrics used by neither alerts nor dashboard: {unused:?}");
    }
}

#[test]
fn the_promql_scanner_finds_names_labels_and_histogram_series() {
    let s = selectors(
        r#"histogram_quantile(0.99, sum by (le) (rate(catering_sync_post_duration_seconds_bucket{pod=~"$pod", x="catering_sync_nope"}[$__rate_interval]))) / catering_sync_posts_total {outcome = "delivered"}"#,
    );
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].name, "catering_sync_post_duration_seconds_bucket");
    assert_eq!(
        s[0].matchers[1],
        ("x".into(), "=".into(), "catering_sync_nope".into())
    );
    assert_eq!(s[1].name, "catering_sync_posts_total");
    let e = exported();
    let mut problems = Vec::new();
    assert_eq!(
        e.check(&s[1], &mut problems).as_deref(),
        Some("catering_sync_posts_total")
    );
    assert!(problems.is_empty(), "{problems:?}");
    let p = selectors(
        r#"process_resident_memory_bytes{namespace=~"$namespace"} / catering_sync_memory_limit_bytes"#,
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].name, "process_resident_memory_bytes");
    assert_eq!(
        e.check(&p[0], &mut problems).as_deref(),
        Some("process_resident_memory_bytes")
    );
    assert!(problems.is_empty(), "{problems:?}");
    for (bad, why) in [
        ("catering_sync_posts_delivered", "not in metrics::NAMES"),
        ("process_nope_bytes", "not in metrics::NAMES"),
        (r#"process_open_fds{fd="3"}"#, "no label"),
        ("catering_sync_config_fault_count", "not a histogram"),
        (r#"catering_sync_posts_total{outcome="ok"}"#, "is one of"),
        (r#"catering_sync_dead_letters_total{cause="x"}"#, "no label"),
    ] {
        let mut problems = Vec::new();
        e.check(&selectors(bad)[0], &mut problems);
        assert!(
            problems.iter().any(|p| p.contains(why)),
            "{bad}: {problems:?}"
        );
    }
}

#[test]
fn every_alert_has_a_runbook_heading_in_deploy_readme() {
    let anchors = markdown_anchors(&read(README));
    for r in alert_rules() {
        let name = str_of(&r["alert"], "alert");
        let url = str_of(
            &r["annotations"]["runbook_url"],
            &format!("{name} runbook_url"),
        );
        let anchor = url.strip_prefix(RUNBOOK_BASE).unwrap_or_else(|| {
            panic!("{name}: runbook_url {url} starts with {RUNBOOK_BASE} (the one base an overlay replaces)")
        });
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}: its runbook is the heading named after it"
        );
        assert!(
            anchors.contains(anchor),
            "{name}: {README} has a heading whose anchor is #{anchor}; its anchors: {anchors:?}"
        );
    }
    for section in [
        "alerts",
        "severity",
        "runbook-urls",
        "runbooks",
        "dashboard",
    ] {
        assert!(
            anchors.contains(section),
            "{README} has a heading #{section}; its anchors: {anchors:?}"
        );
    }
}

#[test]
fn every_alert_judges_each_deployment_separately() {
    // Two deployments on one Prometheus (prod, staging) must not be summed together nor hide
    // each other: every aggregation keeps namespace and job.
    let mut problems = Vec::new();
    for r in alert_rules() {
        let name = str_of(&r["alert"], "alert");
        let expr = str_of(&r["expr"], name);
        for (op, grouping) in aggregations(expr) {
            let keeps = match &grouping {
                Grouping::By(labels) => ["namespace", "job"]
                    .iter()
                    .all(|l| labels.iter().any(|x| x == l)),
                Grouping::Without(labels) => !labels.iter().any(|x| x == "namespace" || x == "job"),
                Grouping::Neither => false,
            };
            if !keeps {
                problems.push(format!(
                    "{name}: {op} {grouping:?} does not keep namespace and job in {expr}"
                ));
            }
        }
        if expr.contains("absent(") && name != "CateringSyncAbsent" {
            problems.push(format!(
                "{name}: absent() drops every label (only CateringSyncAbsent's fallback may use it)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "alerts that mix deployments:\n{problems:#?}"
    );
}

#[test]
fn the_aggregation_and_anchor_scanners() {
    let a = aggregations(
        r#"sum by (namespace, job) (max by(namespace, job, partition) (x{count="1"})) > 0 and count(y) or max(z) without (pod) or topk(3, w) by (job) or max_over_time(v[1d])"#,
    );
    assert_eq!(
        a,
        vec![
            (
                "sum".to_string(),
                Grouping::By(vec!["namespace".into(), "job".into()])
            ),
            (
                "max".to_string(),
                Grouping::By(vec!["namespace".into(), "job".into(), "partition".into()])
            ),
            ("count".to_string(), Grouping::Neither),
            ("max".to_string(), Grouping::Without(vec!["pod".into()])),
            ("topk".to_string(), Grouping::By(vec!["job".into()])),
        ]
    );
    assert_eq!(github_anchor("CateringSyncAbsent"), "cateringsyncabsent");
    assert_eq!(github_anchor("Scaling (KEDA)"), "scaling-keda");
    assert_eq!(
        github_anchor("Before a rollout: `catering-sync wechatpay check --config FILE`"),
        "before-a-rollout-catering-sync-wechatpay-check---config-file"
    );
    let anchors =
        markdown_anchors("# Top\n\n```sh\n# not a heading\n```\n### Runbook URLs\n#nospace\n");
    assert_eq!(
        anchors.into_iter().collect::<Vec<_>>(),
        vec!["runbook-urls".to_string(), "top".to_string()]
    );
}
