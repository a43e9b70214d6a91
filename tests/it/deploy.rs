//! `deploy/` agrees with the service: the Kubernetes manifests carry what the binary needs (its
//! config path, port, probes, keys, shutdown deadline, consumer group and topic), the ConfigMap is
//! the shipped example config, every PromQL expression of the alerts and the dashboard names only
//! metrics (and labels) the service exports, promtool accepts and unit-tests the alert rules, and
//! the Dockerfile builds a locked release binary into a non-root image.

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

/// The alerts operators rely on, with their severity.
const ALERTS_REQUIRED: [(&str, &str); 8] = [
    ("CateringSyncDeadLettersRising", "warning"),
    ("CateringSyncConsumerLagGrowing", "warning"),
    ("CateringSyncCircuitBreakerOpen", "critical"),
    ("CateringSyncConfigurationFault", "critical"),
    ("CateringSyncResponseSignatureFailures", "critical"),
    ("CateringSyncNoProgress", "critical"),
    // Cases the others cannot see: no partition owned, no member scraped.
    ("CateringSyncNoPartitionsAssigned", "critical"),
    ("CateringSyncAbsent", "critical"),
];

/// Dashboard panels (title substrings, case-insensitive).
const PANELS_REQUIRED: [&str; 12] = [
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
];

/// Metrics without which the alerts and the dashboard would not cover operations.
const NAMES_REQUIRED: [&str; 8] = [
    "catering_sync_dead_letters_total",
    "catering_sync_consumer_lag",
    "catering_sync_circuit_breaker_state",
    "catering_sync_config_fault",
    "catering_sync_response_signature_failures_total",
    "catering_sync_post_duration_seconds",
    "catering_sync_posts_total",
    "catering_sync_events_consumed_total",
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

/// Every document of a (multi-document) YAML file, empty documents left out.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
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

/// Every Kubernetes object under deploy/k8s (all YAML files, the example Secret included),
/// by (kind, name), with the file it came from.
fn k8s_objects() -> BTreeMap<(String, String), (String, Value)> {
    let mut objects = BTreeMap::new();
    for entry in std::fs::read_dir(path("deploy/k8s")).unwrap() {
        let p = entry.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(file.ends_with(".yaml") || file.ends_with(".yml")) || file == "kustomization.yaml" {
            continue;
        }
        for doc in yaml_docs(&format!("deploy/k8s/{file}")) {
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

// ---- manifests -----------------------------------------------------------------------------------

#[test]
fn every_manifest_parses_and_carries_the_required_fields() {
    let config = example_config();
    let objects = k8s_objects();

    // -- the Deployment
    let deploy = object(&objects, "Deployment", "catering-sync");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 3, "three members to start with");
    let pod_labels = &spec["template"]["metadata"]["labels"];
    selects(
        &spec["selector"]["matchLabels"],
        pod_labels,
        "Deployment selector",
    );
    let pod = &spec["template"]["spec"];
    let containers = arr(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1, "one container");
    let c = &containers[0];
    let image = str_of(&c["image"], "image");
    assert!(
        image.ends_with("/catering-sync:0.1.0"),
        "image {image} is catering-sync:0.1.0 in a registry"
    );
    let args: Vec<&str> = arr(&c["args"], "args")
        .iter()
        .map(|a| str_of(a, "args"))
        .collect();
    assert_eq!(
        args,
        ["run", "--config", "/etc/catering-sync/catering-sync.toml"]
    );
    let config_path = args[2];

    // The port: named http, the config's http.listen port.
    let ports = arr(&c["ports"], "ports");
    let http = ports
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a containerPort named http");
    assert_eq!(http["containerPort"], 9464);
    assert_eq!(
        i64_of(&http["containerPort"], "containerPort"),
        i64::from(config.http.listen.port()),
        "the container port is the config's http.listen"
    );

    // Probes: /healthz for liveness (and start-up), /readyz for readiness, on the http port.
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let p = &c[probe];
        assert_eq!(p["httpGet"]["path"], path, "{probe} path");
        let port = &p["httpGet"]["port"];
        assert!(
            *port == "http" || *port == 9464,
            "{probe} probes the http port, not {port}"
        );
        let period = i64_of(&p["periodSeconds"], probe);
        let failures = i64_of(&p["failureThreshold"], probe);
        assert!(
            (1..=60).contains(&period),
            "{probe}: periodSeconds {period}"
        );
        assert!(failures >= 1, "{probe}: failureThreshold {failures}");
        assert!(
            i64_of(&p["timeoutSeconds"], probe) < period,
            "{probe}: timeout below the period"
        );
    }

    // Resources: requests and limits for cpu and memory, requests <= limits.
    let res = &c["resources"];
    for kind in ["cpu", "memory"] {
        let req = quantity(&res["requests"][kind], &format!("requests.{kind}"));
        let lim = quantity(&res["limits"][kind], &format!("limits.{kind}"));
        let (r, l) = if kind == "cpu" {
            (cpu_millis(&req), cpu_millis(&lim))
        } else {
            (memory_bytes(&req), memory_bytes(&lim))
        };
        assert!(r > 0 && r <= l, "{kind}: request {req} <= limit {lim}");
    }
    assert!(
        memory_bytes(&quantity(&res["limits"]["memory"], "limits.memory")) >= 512 << 20,
        "the memory limit leaves room for tracked orders (~2 KiB each)"
    );

    // Security: non-root, read-only root, no privilege escalation, no capabilities, seccomp.
    let psc = &pod["securityContext"];
    let csc = &c["securityContext"];
    for (what, sc) in [("pod", psc), ("container", csc)] {
        assert_eq!(sc["runAsNonRoot"], true, "{what} runAsNonRoot");
        let uid = i64_of(&sc["runAsUser"], "runAsUser");
        assert_eq!(uid, 10001, "{what} runAsUser");
        assert_eq!(sc["runAsGroup"], 10001, "{what} runAsGroup");
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "{what} seccomp"
        );
    }
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert!(
        arr(&csc["capabilities"]["drop"], "capabilities.drop").contains(&Value::from("ALL")),
        "drops ALL capabilities"
    );
    // The keys are mounted 0400: only the fsGroup (group-read added by the kubelet) lets the
    // non-root process read them.
    assert_eq!(
        psc["fsGroup"], psc["runAsGroup"],
        "fsGroup = runAsGroup, or the 0400 key files are unreadable to uid 10001"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);

    // Shutdown: the grace period outlasts the drain deadline with margin for commit and leave.
    let grace = i64_of(&pod["terminationGracePeriodSeconds"], "grace") as u64;
    let shutdown_ms = config.pipeline.shutdown_timeout_ms;
    assert!(
        grace * 1000 > shutdown_ms + 10_000,
        "terminationGracePeriodSeconds {grace} must exceed pipeline.shutdown_timeout_ms \
         ({shutdown_ms} ms) by at least 10 s"
    );

    // Volumes and mounts.
    let volumes: BTreeMap<&str, &Value> = arr(&pod["volumes"], "volumes")
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    let mounts = arr(&c["volumeMounts"], "volumeMounts");
    let mount_of =
        |volume: &str| -> Vec<&Value> { mounts.iter().filter(|m| m["name"] == volume).collect() };
    let volume_with = |key: &str, name: &str| -> &str {
        volumes
            .iter()
            .find(|(_, v)| v[key]["name"] == name || v[key]["secretName"] == name)
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("a volume from {key} {name}"))
    };
    // The ConfigMap provides the file the args name.
    let cm_volume = volume_with("configMap", "catering-sync-config");
    let cm_items = volumes[cm_volume]["configMap"]["items"].as_array();
    let provided: Vec<String> = mount_of(cm_volume)
        .iter()
        .flat_map(|m| {
            let at = str_of(&m["mountPath"], "mountPath").trim_end_matches('/');
            assert_eq!(m["readOnly"], true, "the config is mounted read-only");
            match m["subPath"].as_str() {
                Some(_) => vec![at.to_string()],
                None => match cm_items {
                    Some(items) => items
                        .iter()
                        .map(|i| format!("{at}/{}", str_of(&i["path"], "item path")))
                        .collect(),
                    None => vec![format!("{at}/catering-sync.toml")],
                },
            }
        })
        .collect();
    assert!(
        provided.iter().any(|p| p == config_path),
        "{config_path} is provided by the ConfigMap mount (got {provided:?})"
    );
    if let Some(sub) = mount_of(cm_volume)
        .iter()
        .find_map(|m| m["subPath"].as_str())
    {
        assert_eq!(sub, "catering-sync.toml", "subPath is the ConfigMap key");
    }

    // The key Secret: read-only, 0400, at the directory the config's key files are in, and every
    // key file the config names is a key of the (example) Secret.
    let keys_volume = volume_with("secret", "catering-sync-keys");
    assert_eq!(
        volumes[keys_volume]["secret"]["defaultMode"], 0o400,
        "key files 0400"
    );
    let key_mounts = mount_of(keys_volume);
    assert_eq!(key_mounts.len(), 1, "the key Secret is mounted once");
    assert_eq!(
        key_mounts[0]["readOnly"], true,
        "the key Secret is mounted read-only"
    );
    let keys_dir = str_of(&key_mounts[0]["mountPath"], "keys mountPath");
    assert_eq!(keys_dir, "/etc/catering-sync/keys");
    let secret = object(&objects, "Secret", "catering-sync-keys");
    let mut key_files = vec![config.wechatpay.private_key_file.clone()];
    for v in &config.wechatpay.verification_keys {
        key_files.extend(v.public_key_file.clone());
        key_files.extend(v.certificate_file.clone());
    }
    for f in key_files {
        assert_eq!(
            f.parent(),
            Some(Path::new(keys_dir)),
            "{} lies in the key mount {keys_dir}",
            f.display()
        );
        let file = f.file_name().unwrap().to_str().unwrap();
        assert!(
            secret["stringData"][file].is_string(),
            "the example Secret catering-sync-keys has the key {file}"
        );
    }
    // /tmp is writable although the root file system is not.
    assert!(
        mounts.iter().any(|m| m["mountPath"] == "/tmp"
            && volumes[str_of(&m["name"], "mount")]
                .get("emptyDir")
                .is_some()),
        "an emptyDir at /tmp"
    );

    // Environment: RUST_LOG, and the SASL password from an optional Secret under a name the
    // config's override mechanism maps to kafka.common."sasl.password".
    let env = arr(&c["env"], "env");
    let var = |name: &str| -> &Value {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name}"))
    };
    assert_eq!(var("RUST_LOG")["value"], "info");
    let sasl = "CATERING_SYNC__KAFKA__COMMON__SASL_PASSWORD";
    let from = &var(sasl)["valueFrom"]["secretKeyRef"];
    assert_eq!(from["name"], "catering-sync-kafka");
    assert_eq!(from["key"], sasl);
    assert_eq!(from["optional"], true);
    let overridden = Config::from_toml(
        &read(EXAMPLE_CONFIG),
        [(sasl.to_string(), "s3cret".to_string())].into_iter(),
    )
    .unwrap();
    assert_eq!(
        overridden
            .kafka
            .common
            .0
            .get("sasl.password")
            .map(String::as_str),
        Some("s3cret"),
        "{sasl} sets sasl.password"
    );
    let kafka_secret = object(&objects, "Secret", "catering-sync-kafka");
    assert!(kafka_secret["stringData"][sasl].is_string());

    // Anti-affinity across nodes for our own pods.
    let terms = arr(
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"],
        "preferred pod anti-affinity",
    );
    assert!(
        terms.iter().any(|t| {
            let term = &t["podAffinityTerm"];
            term["topologyKey"] == "kubernetes.io/hostname"
                && term["labelSelector"]["matchLabels"]
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| &pod_labels[k] == v))
        }),
        "preferred anti-affinity on kubernetes.io/hostname against our own pods"
    );

    // -- the example Secrets hold placeholders, never key material.
    for name in ["catering-sync-keys", "catering-sync-kafka"] {
        let s = object(&objects, "Secret", name);
        let data = s["stringData"].as_object().expect("stringData");
        assert!(
            s.get("data").is_none(),
            "{name}: placeholders in stringData"
        );
        for (k, v) in data {
            let v = str_of(v, k);
            assert!(v.contains("REPLACE WITH"), "{name}.{k} is a placeholder");
            assert!(!v.contains("-----BEGIN"), "{name}.{k} holds no PEM");
        }
    }

    // -- the ConfigMap the Deployment mounts.
    let cm = object(&objects, "ConfigMap", "catering-sync-config");
    assert!(cm["data"]["catering-sync.toml"].is_string());

    // -- the Service: the http port.
    let svc = object(&objects, "Service", "catering-sync");
    selects(&svc["spec"]["selector"], pod_labels, "Service selector");
    let sp = &arr(&svc["spec"]["ports"], "Service ports")[0];
    assert_eq!(sp["name"], "http");
    assert_eq!(sp["port"], 9464);
    assert!(sp["targetPort"] == "http" || sp["targetPort"] == 9464);

    // -- the PodMonitor: /metrics on the http port every 15 s.
    let pm = object(&objects, "PodMonitor", "catering-sync");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    selects(
        &pm["spec"]["selector"]["matchLabels"],
        pod_labels,
        "PodMonitor selector",
    );
    let ep = &arr(&pm["spec"]["podMetricsEndpoints"], "podMetricsEndpoints")[0];
    assert_eq!(ep["port"], "http");
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["interval"], "15s");

    // -- the PodDisruptionBudget: one member at a time.
    let pdb = object(&objects, "PodDisruptionBudget", "catering-sync");
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"].get("minAvailable").is_none());
    selects(
        &pdb["spec"]["selector"]["matchLabels"],
        pod_labels,
        "PDB selector",
    );

    // -- KEDA: lag of the config's group on the config's topic.
    let so = object(&objects, "ScaledObject", "catering-sync");
    assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
    let so_spec = &so["spec"];
    assert_eq!(so_spec["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(so_spec["scaleTargetRef"]["name"], "catering-sync");
    let min = i64_of(&so_spec["minReplicaCount"], "minReplicaCount");
    let max = i64_of(&so_spec["maxReplicaCount"], "maxReplicaCount");
    assert_eq!(min, 1, "never scaled to zero");
    assert!(
        (3..=12).contains(&max),
        "maxReplicaCount {max}: the input topic's partition count (12)"
    );
    let triggers = arr(&so_spec["triggers"], "triggers");
    let kafka = triggers
        .iter()
        .find(|t| t["type"] == "kafka")
        .expect("a kafka trigger");
    let md = kafka["metadata"].as_object().expect("trigger metadata");
    for (k, v) in md {
        assert!(v.is_string(), "KEDA metadata values are strings: {k}");
    }
    assert_eq!(md["topic"], config.kafka.input_topic.as_str());
    assert_eq!(md["consumerGroup"], config.kafka.group_id.as_str());
    assert_eq!(md["bootstrapServers"], config.kafka.brokers.as_str());
    assert_eq!(md["lagThreshold"], "500");
    assert_eq!(md["excludePersistentLag"], "true");
    assert_eq!(md["offsetResetPolicy"], "earliest");

    // -- kustomization: lists files that exist, every manifest except the example Secret.
    let k = yaml("deploy/k8s/kustomization.yaml");
    assert_eq!(k["kind"], "Kustomization");
    let listed: BTreeSet<&str> = arr(&k["resources"], "resources")
        .iter()
        .map(|r| str_of(r, "resource"))
        .collect();
    for r in &listed {
        assert!(path(&format!("deploy/k8s/{r}")).is_file(), "{r} exists");
    }
    let expected: BTreeSet<&str> = [
        "deployment.yaml",
        "configmap.yaml",
        "service.yaml",
        "podmonitor.yaml",
        "pdb.yaml",
        "keda-scaledobject.yaml",
    ]
    .into();
    assert_eq!(listed, expected);
    let files: BTreeSet<&str> = objects.values().map(|(f, _)| f.as_str()).collect();
    for f in files {
        assert!(
            listed.contains(f) || f == "secret.example.yaml",
            "{f} is in the kustomization"
        );
    }
    // The image override names the Deployment's image.
    for i in k["images"].as_array().into_iter().flatten() {
        let name = str_of(&i["name"], "images[].name");
        assert!(image.starts_with(&format!("{name}:")), "{name} is {image}");
    }
}

#[test]
fn the_configmap_carries_the_example_config_byte_for_byte() {
    let cm = yaml("deploy/k8s/configmap.yaml");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "catering-sync-config");
    let carried = str_of(&cm["data"]["catering-sync.toml"], "data.catering-sync.toml");
    let example = read(EXAMPLE_CONFIG);
    if carried != example {
        let line = carried
            .lines()
            .zip(example.lines())
            .position(|(a, b)| a != b)
            .map_or("the end".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "deploy/k8s/configmap.yaml differs from {EXAMPLE_CONFIG} at {line} \
             ({} vs {} bytes): run deploy/k8s/update-configmap.sh",
            carried.len(),
            example.len()
        );
    }
    let c = Config::from_toml(carried, std::iter::empty())
        .unwrap_or_else(|e| panic!("the ConfigMap's config loads: {e}"));
    assert_eq!(c.http.listen.port(), 9464);
}

// ---- PromQL --------------------------------------------------------------------------------------

/// One vector selector naming a catering-sync metric: the name and its label matchers
/// (label, operator, value).
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

/// Every selector of a `catering_sync_…` metric in `expr` (hand-written scanner: identifiers of
/// [A-Za-z0-9_:], string literals skipped).
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
        if !word.starts_with("catering_sync_") {
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
    /// The family a series name belongs to, or why it does not belong to any.
    fn family(&self, name: &str) -> Result<String, String> {
        if NAMES.contains(&name) {
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
        Err(format!("{name} is not in metrics::NAMES"))
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

fn alert_rules() -> Vec<Value> {
    let doc = yaml(ALERTS);
    let groups = arr(&doc["groups"], "groups");
    assert_eq!(groups.len(), 1, "one group");
    assert_eq!(groups[0]["name"], "catering-sync");
    arr(&groups[0]["rules"], "rules").clone()
}

fn dashboard() -> Value {
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
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
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
        assert!(
            !found.is_empty(),
            "{place}: no catering_sync_ metric in {expr}"
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

    // Alerts: each required one present, with `for`, severity and the three annotations.
    let rules = alert_rules();
    let mut by_name = BTreeMap::new();
    for r in &rules {
        let name = str_of(&r["alert"], "alert").to_string();
        let expr = str_of(&r["expr"], &name);
        let families = scan(&format!("alert {name}"), expr, &mut problems);
        assert!(r["for"].is_string(), "{name} has a `for`");
        let sev = str_of(&r["labels"]["severity"], &format!("{name} severity"));
        assert!(["warning", "critical"].contains(&sev), "{name}: {sev}");
        for a in ["summary", "description", "runbook"] {
            let text = str_of(&r["annotations"][a], &format!("{name} {a}"));
            assert!(text.len() > 20, "{name}: a real {a}");
        }
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
    assert!(
        by_name["CateringSyncAbsent"].1.starts_with("absent("),
        "CateringSyncAbsent fires on missing series"
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
    for (bad, why) in [
        ("catering_sync_posts_delivered", "not in metrics::NAMES"),
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

// ---- promtool ------------------------------------------------------------------------------------

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

// ---- Dockerfile ----------------------------------------------------------------------------------

/// The Dockerfile's instructions (continuation lines joined, comments dropped) as
/// (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read(DOCKERFILE);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        let (body, more) = match t.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (t, false),
        };
        current.push_str(body);
        current.push(' ');
        if !more {
            let joined = current.trim().to_string();
            current.clear();
            if joined.is_empty() {
                continue;
            }
            let (inst, args) = joined.split_once(' ').unwrap_or((&joined, ""));
            out.push((inst.to_uppercase(), args.trim().to_string()));
        }
    }
    out
}

#[test]
fn the_dockerfile_is_multi_stage_and_runs_as_non_root() {
    let inst = dockerfile();
    let froms: Vec<usize> = inst
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {inst:?}");
    let first = &inst[froms[0]].1;
    assert!(
        first.starts_with("rust:") && first.to_lowercase().contains(" as "),
        "a named Rust build stage: {first}"
    );
    let runtime = &inst[*froms.last().unwrap()..];

    let build = inst
        .iter()
        .find(|(i, a)| i == "RUN" && a.contains("cargo build"))
        .expect("a cargo build");
    assert!(
        build.1.contains("--release") && build.1.contains("--locked"),
        "a locked release build: {}",
        build.1
    );
    assert!(
        build.1.contains("--no-default-features"),
        "the production binary is built without the tools (sandbox, demo, bench): {}",
        build.1
    );

    // The final stage runs as the manifests' non-root uid.
    let user = runtime
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.as_str())
        .expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        !["root", "0", ""].contains(&uid),
        "the image runs as a non-root user, not {user}"
    );
    let deployment = yaml("deploy/k8s/deployment.yaml");
    let pod_uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"].clone();
    assert_eq!(
        uid,
        pod_uid.to_string(),
        "the image's USER is the Deployment's runAsUser"
    );

    let exposed: Vec<&str> = runtime
        .iter()
        .filter(|(i, _)| i == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    assert!(
        exposed.iter().any(|p| p.trim_end_matches("/tcp") == "9464"),
        "EXPOSE 9464: {exposed:?}"
    );
    assert!(
        runtime
            .iter()
            .any(|(i, a)| i == "COPY" && a.contains("--from=") && a.contains("catering-sync")),
        "the runtime stage copies the binary from the build stage"
    );

    // Exec-form ENTRYPOINT and CMD: the binary, and the Deployment's args.
    let json = |name: &str| -> Vec<String> {
        let (_, a) = runtime
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .unwrap_or_else(|| panic!("{name} in the runtime stage"));
        serde_json::from_str(a).unwrap_or_else(|e| panic!("{name} in exec (JSON) form: {a}: {e}"))
    };
    assert_eq!(json("ENTRYPOINT"), ["/usr/local/bin/catering-sync"]);
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<String> = serde_json::from_value(args.clone()).unwrap();
    assert_eq!(json("CMD"), args, "CMD is the Deployment's args");
}
