//! Deployment artefacts: promtool checks and unit-tests the alert rules.

use super::promql::{alert_rules, dashboard, dashboard_exprs};
use super::*;

/// The `namespace` an input series of the unit tests names (`…{…,namespace="prod",…}`).
fn namespace_of(series: &str) -> Option<String> {
    let start = series.find("namespace=\"")? + "namespace=\"".len();
    let len = series[start..].find('"')?;
    Some(series[start..start + len].to_string())
}

fn promtool(args: &[&str]) -> String {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(ROOT)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run promtool ({e}): the alert rules are checked with it. scripts/test.sh \
             installs it (Debian package `prometheus`); or `apt-get install prometheus`"
        ),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let checked = promtool(&["check", "rules", ALERTS]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", ALERT_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    // The unit tests cover every alert both firing and quiet, with two deployments on one
    // Prometheus: each alert fires for one namespace while another namespace's series are in
    // the same test and it does not fire for that one (promtool compares the whole list).
    let tests = yaml(ALERT_TESTS);
    assert_eq!(tests["rule_files"][0], "alerts.yaml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    let mut separated = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for t in arr(&tests["tests"], "tests") {
        let present: BTreeSet<String> = arr(&t["input_series"], "input_series")
            .iter()
            .filter_map(|s| namespace_of(str_of(&s["series"], "series")))
            .collect();
        namespaces.extend(present.iter().cloned());
        for a in arr(&t["alert_rule_test"], "alert_rule_test") {
            let name = str_of(&a["alertname"], "alertname").to_string();
            let expected = arr(&a["exp_alerts"], "exp_alerts");
            if expected.is_empty() {
                quiet.insert(name);
                continue;
            }
            let fired: BTreeSet<String> = expected
                .iter()
                .filter_map(|e| e["exp_labels"]["namespace"].as_str().map(str::to_string))
                .collect();
            if !fired.is_empty() && present.iter().any(|n| !fired.contains(n)) {
                separated.insert(name.clone());
            }
            fires.insert(name);
        }
    }
    assert!(
        namespaces.len() >= 2,
        "{ALERT_TESTS}: input series from two namespaces at least, got {namespaces:?}"
    );
    for r in alert_rules() {
        let name = str_of(&r["alert"], "alert");
        assert!(fires.contains(name), "{ALERT_TESTS} shows {name} firing");
        assert!(quiet.contains(name), "{ALERT_TESTS} shows {name} quiet");
        assert!(
            separated.contains(name),
            "{ALERT_TESTS} shows {name} firing for one namespace (exp_labels.namespace) while \
             another namespace's series are in the same test, and not for that one"
        );
    }

    // The dashboard's queries are valid PromQL: promtool parses them as recording rules, with
    // Grafana's variables replaced by what they stand for.
    let dash = dashboard();
    let rules: Vec<Value> = dashboard_exprs(&dash)
        .into_iter()
        .filter(|(place, _)| place.starts_with("panel"))
        .enumerate()
        .map(|(i, (place, expr))| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$namespace", ".*")
                .replace("$pod", ".*");
            assert!(!expr.contains('$'), "{place}: unknown variable in {expr}");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&p, serde_yaml::to_string(&file).unwrap()).unwrap();
    let checked = promtool(&["check", "rules", p.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
}
