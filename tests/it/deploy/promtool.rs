//! Deployment artefacts: promtool checks and unit-tests the alert rules.

use super::promql::{alert_rules, dashboard, dashboard_exprs};
use super::*;

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

    // The unit tests cover every alert both firing and quiet.
    let tests = yaml(ALERT_TESTS);
    assert_eq!(tests["rule_files"][0], "alerts.yaml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in arr(&tests["tests"], "tests") {
        for a in arr(&t["alert_rule_test"], "alert_rule_test") {
            let name = str_of(&a["alertname"], "alertname").to_string();
            if arr(&a["exp_alerts"], "exp_alerts").is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    for r in alert_rules() {
        let name = str_of(&r["alert"], "alert");
        assert!(fires.contains(name), "{ALERT_TESTS} shows {name} firing");
        assert!(quiet.contains(name), "{ALERT_TESTS} shows {name} quiet");
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
