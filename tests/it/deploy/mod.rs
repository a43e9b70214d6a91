//! `deploy/` agrees with the service: the Kubernetes manifests carry what the binary needs (its
//! config path, port, probes, keys, shutdown deadline, consumer group and topic), the ConfigMap is
//! the shipped example config, every PromQL expression of the alerts and the dashboard names only
//! metrics (and labels) the service exports, promtool accepts and unit-tests the alert rules, and
//! the Dockerfile builds a locked release binary of the production build into a non-root image.
//! One file per artefact: `manifests.rs`, `promql.rs`, `promtool.rs`, `docker.rs`; the shared
//! readers and constants here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use catering_sync::config::Config;
use catering_sync::telemetry::metrics::{self, Metrics, NAMES};
use serde::Deserialize;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const EXAMPLE_CONFIG: &str = "deploy/config/catering-sync.example.toml";
const ALERTS: &str = "deploy/prometheus/alerts.yaml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yaml";
const DASHBOARD: &str = "deploy/grafana/catering-sync.json";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";
/// The kustomize base (core kinds only), the example overlay (base + every component) whose
/// rendering the manifest tests check, and the example Secrets (applied by nobody).
const K8S_BASE: &str = "deploy/k8s/base";
const K8S_OVERLAY: &str = "deploy/k8s/overlays/example";
const K8S_COMPONENTS: &str = "deploy/k8s/components";
const K8S_SECRET_EXAMPLE: &str = "deploy/k8s/secret.example.yaml";
/// Copies kept by scripts/sync-deploy.sh (kustomize reads no file outside a kustomization).
const K8S_CONFIG_COPY: &str = "deploy/k8s/base/catering-sync.toml";
const K8S_DASHBOARD_COPY: &str = "deploy/k8s/components/grafana-dashboard/catering-sync.json";
const K8S_PROMETHEUS_RULE: &str = "deploy/k8s/components/prometheusrule/prometheusrule.yaml";
const STRIMZI_TOPICS: &str = "deploy/examples/strimzi/topics.yaml";
const STRIMZI_USERS: &str = "deploy/examples/strimzi/users.yaml";

/// The alerts operators rely on, with their severity (`critical` pages: only what needs a human
/// now; deploy/README.md "Severity").
const ALERTS_REQUIRED: [(&str, &str); 10] = [
    ("CateringSyncDeadLettersRising", "warning"),
    ("CateringSyncConsumerLagGrowing", "warning"),
    ("CateringSyncCircuitBreakerOpen", "critical"),
    ("CateringSyncConfigurationFault", "critical"),
    ("CateringSyncResponseSignatureFailures", "critical"),
    ("CateringSyncNoProgress", "critical"),
    // Cases the others cannot see: no partition owned, no member scraped.
    ("CateringSyncNoPartitionsAssigned", "critical"),
    ("CateringSyncAbsent", "critical"),
    // Degraded but flowing: working hours.
    ("CateringSyncMemoryNearLimit", "warning"),
    ("CateringSyncDeliveriesLate", "warning"),
];

/// Dashboard panels (title substrings, case-insensitive).
const PANELS_REQUIRED: [&str; 17] = [
    "throughput",
    "post latency",
    "posts by outcome and status",
    "dead letters by reason",
    "consumer lag per partition",
    "posts in flight",
    "circuit breaker",
    "changelog restore",
    "configuration fault",
    "signature failures",
    "retries by cause",
    "tracked orders",
    "consume rate per partition",
    "event age",
    "memory vs limit",
    "restarts",
    "version",
];

/// Metrics without which the alerts and the dashboard would not cover operations.
const NAMES_REQUIRED: [&str; 13] = [
    "catering_sync_dead_letters_total",
    "catering_sync_consumer_lag",
    "catering_sync_circuit_breaker_state",
    "catering_sync_config_fault",
    "catering_sync_response_signature_failures_total",
    "catering_sync_post_duration_seconds",
    "catering_sync_posts_total",
    "catering_sync_events_consumed_total",
    "catering_sync_event_age_seconds",
    "catering_sync_memory_limit_bytes",
    "catering_sync_build_info",
    // The prometheus crate's process collector (not in metrics::NAMES).
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// Labels the scrape (Prometheus Operator PodMonitor) adds to every series.
const SCRAPE_LABELS: [&str; 6] = [
    "namespace",
    "pod",
    "job",
    "instance",
    "container",
    "endpoint",
];

// ---- files ---------------------------------------------------------------------------------------

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// Every document of a (multi-document) YAML text, empty documents left out.
fn yaml_docs_in(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what} is YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every document of a (multi-document) YAML file, empty documents left out.
fn yaml_docs(rel: &str) -> Vec<Value> {
    yaml_docs_in(&read(rel), rel)
}

/// What `kubectl apply -k` would send for the kustomization `rel`: `kubectl kustomize`'s output.
fn kustomize(rel: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(path(rel))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running `kubectl kustomize {rel}`: {e}. The deploy tests render the manifests \
                 with kubectl (1.21 or later, for kustomize components); scripts/test.sh \
                 installs it"
            )
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {rel} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kubectl kustomize prints UTF-8");
    yaml_docs_in(&text, &format!("kubectl kustomize {rel}"))
}

fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn example_config() -> Config {
    Config::from_toml(&read(EXAMPLE_CONFIG), std::iter::empty())
        .unwrap_or_else(|e| panic!("{EXAMPLE_CONFIG} loads: {e}"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn i64_of(v: &Value, what: &str) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("{what}: expected an integer, got {v}"))
}

fn arr<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

/// Every Kubernetes object of the rendered example overlay (`kubectl kustomize
/// deploy/k8s/overlays/example`: the base with every component) and of the example Secrets, by
/// (kind, name), with where it came from (the overlay or the Secret file).
fn k8s_objects() -> BTreeMap<(String, String), (String, Value)> {
    let mut objects = BTreeMap::new();
    let sources = [
        (K8S_OVERLAY.to_string(), kustomize(K8S_OVERLAY)),
        (
            K8S_SECRET_EXAMPLE.to_string(),
            yaml_docs(K8S_SECRET_EXAMPLE),
        ),
    ];
    for (file, docs) in sources {
        for doc in docs {
            let kind = str_of(&doc["kind"], &format!("{file}: kind")).to_string();
            let name = str_of(&doc["metadata"]["name"], &format!("{file}: name")).to_string();
            assert!(
                doc["apiVersion"].is_string(),
                "{file}: {kind} has an apiVersion"
            );
            let labels = &doc["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"], "catering-sync",
                "{file}: {kind}/{name} carries app.kubernetes.io/name"
            );
            let previous = objects.insert((kind.clone(), name.clone()), (file.clone(), doc));
            assert!(previous.is_none(), "{kind}/{name} defined twice");
        }
    }
    objects
}

fn object<'a>(
    objects: &'a BTreeMap<(String, String), (String, Value)>,
    kind: &str,
    name: &str,
) -> &'a Value {
    &objects
        .get(&(kind.to_string(), name.to_string()))
        .unwrap_or_else(|| {
            panic!(
                "deploy/k8s defines {kind}/{name}; it has {:?}",
                objects.keys()
            )
        })
        .1
}

/// `selector` (a matchLabels map) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value, what: &str) {
    let selector = selector
        .as_object()
        .unwrap_or_else(|| panic!("{what}: matchLabels is a map, got {selector}"));
    assert!(!selector.is_empty(), "{what}: selects something");
    for (k, v) in selector {
        assert_eq!(&labels[k], v, "{what}: pod label {k}");
    }
}

/// CPU in millicores ("250m", "2", "1.5").
fn cpu_millis(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or_else(|_| panic!("cpu quantity {q}")),
        None => {
            let cores: f64 = q.parse().unwrap_or_else(|_| panic!("cpu quantity {q}"));
            (cores * 1000.0).round() as u64
        }
    }
}

/// Memory in bytes ("256Mi", "1Gi", "500M", "1048576").
fn memory_bytes(q: &str) -> u64 {
    const UNITS: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in UNITS {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or_else(|_| panic!("memory {q}")) * factor;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("memory quantity {q}"))
}

/// A `quantity` value as a string (YAML may give `cpu: 2` as a number).
fn quantity(v: &Value, what: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => panic!("{what}: expected a quantity, got {v}"),
    }
}

mod docker;
mod manifests;
mod promql;
mod promtool;
