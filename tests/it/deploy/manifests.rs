//! Deployment artefacts: the Kubernetes manifests, as `kubectl kustomize` renders the example
//! overlay (base + every component): fields, probes, resources, the generated ConfigMap, KEDA,
//! the NetworkPolicy, the monitoring objects; the copies scripts/sync-deploy.sh keeps; the
//! Strimzi examples.

use super::*;

#[test]
fn every_manifest_parses_and_carries_the_required_fields() {
    let config = example_config();
    let objects = k8s_objects();

    // -- the Deployment
    let deploy = object(&objects, "Deployment", "catering-sync");
    assert_eq!(deploy["apiVersion"], "apps/v1");
    let spec = &deploy["spec"];
    assert!(
        spec.get("replicas").is_none(),
        "no replicas in the Deployment: KEDA's HPA owns the size, and every apply or GitOps \
         sync would reset it (a rebalance and a restore each time): {}",
        spec["replicas"]
    );
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
    let memory_limit = memory_bytes(&quantity(&res["limits"]["memory"], "limits.memory"));
    assert!(
        memory_limit >= 512 << 20,
        "the memory limit leaves room for tracked orders (~1.5 KB each)"
    );
    // The state is the memory: all of it reserved, so the kubelet does not evict a member for
    // using more than its request (an eviction is a rebalance and a full restore elsewhere).
    assert_eq!(
        memory_bytes(&quantity(&res["requests"]["memory"], "requests.memory")),
        memory_limit,
        "memory request = limit"
    );
    assert_eq!(
        c["terminationMessagePolicy"], "FallbackToLogsOnError",
        "a crash's log tail is the termination message"
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
    // Its own ServiceAccount, without a token either.
    let sa_name = str_of(&pod["serviceAccountName"], "serviceAccountName");
    assert_eq!(sa_name, "catering-sync");
    let sa = object(&objects, "ServiceAccount", sa_name);
    assert_eq!(sa["automountServiceAccountToken"], false);

    // Shutdown: the grace period outlasts the drain deadline with margin for commit and leave.
    let grace = i64_of(&pod["terminationGracePeriodSeconds"], "grace") as u64;
    let shutdown_ms = config.pipeline.shutdown_timeout_ms.as_millis() as u64;
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
    // The ConfigMap provides the file the args name. It is the base's configMapGenerator's,
    // whose name kustomize suffixes with a hash of the content: a config change renames it, so
    // the pod template changes and the pods roll.
    let (cm_volume, cm_name) = volumes
        .iter()
        .find_map(|(n, v)| {
            v["configMap"]["name"]
                .as_str()
                .filter(|name| name.starts_with("catering-sync-config"))
                .map(|name| (*n, name))
        })
        .expect("a volume from the ConfigMap catering-sync-config");
    let hash = cm_name
        .strip_prefix("catering-sync-config-")
        .unwrap_or_else(|| panic!("{cm_name}: the generated name carries a hash suffix"));
    assert!(
        !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{cm_name}: the generated name carries a hash suffix"
    );
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
    assert_eq!(
        objects[&("Secret".to_string(), "catering-sync-keys".to_string())].0,
        K8S_SECRET_EXAMPLE,
        "the key Secret is only an example: no kustomization applies it"
    );
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
    assert_eq!(
        objects[&("Secret".to_string(), "catering-sync-kafka".to_string())].0,
        K8S_SECRET_EXAMPLE,
        "the Kafka Secret is only an example: no kustomization applies it"
    );

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

    // -- the ConfigMap the Deployment mounts: the example config, byte for byte.
    let cm = object(&objects, "ConfigMap", cm_name);
    let carried = str_of(&cm["data"]["catering-sync.toml"], "data.catering-sync.toml");
    assert_same_text(carried, &read(EXAMPLE_CONFIG), cm_name, EXAMPLE_CONFIG);
    let loaded = Config::from_toml(carried, std::iter::empty())
        .unwrap_or_else(|e| panic!("the ConfigMap's config loads: {e}"));
    assert_eq!(loaded.http.listen.port(), 9464);

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
    assert!(
        min >= 2,
        "minReplicaCount {min}: at least two members, so one failing or draining never leaves \
         the group without a second (and one member alone holding all the state)"
    );
    assert!(min <= max, "minReplicaCount {min} <= maxReplicaCount {max}");
    // The example overlay's topic: maxReplicaCount is its partition count.
    let input_partitions = strimzi_topic(&config.kafka.input_topic)["spec"]["partitions"].clone();
    assert_eq!(
        max,
        i64_of(&input_partitions, "input topic partitions"),
        "maxReplicaCount is the input topic's partition count ({STRIMZI_TOPICS})"
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
    // 30-60 s of one member's work at the ~1,000 posts/s planned per member (README).
    let lag_threshold: i64 = str_of(&md["lagThreshold"], "lagThreshold")
        .parse()
        .expect("lagThreshold is an integer");
    assert!(
        (30_000..=60_000).contains(&lag_threshold),
        "lagThreshold {lag_threshold}: 30-60 s of one member's throughput"
    );
    // A stuck partition (WeChat Pay down) must keep counting, or KEDA scales down in an outage.
    assert_eq!(md["excludePersistentLag"], "false");
    assert_eq!(md["offsetResetPolicy"], "earliest");
    // KEDA's Kafka client authenticates with keys of the (example) Secret catering-sync-kafka.
    let auth_name = str_of(
        &kafka["authenticationRef"]["name"],
        "authenticationRef.name",
    );
    let ta = object(&objects, "TriggerAuthentication", auth_name);
    assert_eq!(ta["apiVersion"], "keda.sh/v1alpha1");
    let refs = arr(&ta["spec"]["secretTargetRef"], "secretTargetRef");
    let mut parameters = BTreeSet::new();
    for r in refs {
        let parameter = str_of(&r["parameter"], "secretTargetRef.parameter");
        let key = str_of(&r["key"], "secretTargetRef.key");
        assert_eq!(
            r["name"], "catering-sync-kafka",
            "{parameter} comes from the Secret catering-sync-kafka"
        );
        assert!(
            kafka_secret["stringData"][key].is_string(),
            "the example Secret catering-sync-kafka has the key {key} ({parameter})"
        );
        parameters.insert(parameter);
    }
    for p in ["sasl", "username", "password", "tls"] {
        assert!(
            parameters.contains(p),
            "the TriggerAuthentication sets KEDA's {p}"
        );
    }

    // -- the NetworkPolicy: in, only Prometheus on 9464; out, DNS, Kafka and 443.
    let np = object(&objects, "NetworkPolicy", "catering-sync");
    assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
    selects(
        &np["spec"]["podSelector"]["matchLabels"],
        pod_labels,
        "NetworkPolicy podSelector",
    );
    let types: Vec<&str> = arr(&np["spec"]["policyTypes"], "policyTypes")
        .iter()
        .map(|t| str_of(t, "policyType"))
        .collect();
    assert!(
        types.contains(&"Ingress") && types.contains(&"Egress"),
        "policyTypes Ingress and Egress: {types:?}"
    );
    let ingress = arr(&np["spec"]["ingress"], "ingress");
    for rule in ingress {
        assert!(
            rule["from"].as_array().is_some_and(|f| !f.is_empty()),
            "every ingress rule names its sources (none open to all): {rule}"
        );
    }
    assert!(
        ingress.iter().any(|rule| allows(rule, 9464, "TCP")),
        "ingress to the metrics port 9464"
    );
    let egress = arr(&np["spec"]["egress"], "egress");
    for (port, protocol) in [(53, "UDP"), (53, "TCP"), (443, "TCP"), (9092, "TCP")] {
        assert!(
            egress.iter().any(|rule| allows(rule, port, protocol)),
            "egress to {port}/{protocol}"
        );
    }
    assert!(
        egress
            .iter()
            .any(|rule| allows(rule, 443, "TCP") && rule.get("to").is_none()),
        "443 to any destination (WeChat Pay publishes no address range)"
    );

    // -- the PrometheusRule: the alert rules of deploy/prometheus/alerts.yaml.
    let rule = object(&objects, "PrometheusRule", "catering-sync");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        squash_whitespace(&rule["spec"]["groups"]),
        squash_whitespace(&yaml(ALERTS)["groups"]),
        "the rendered PrometheusRule carries the groups of {ALERTS}: run scripts/sync-deploy.sh"
    );

    // -- the dashboard ConfigMap for Grafana's sidecar: fixed name, label, the dashboard.
    let dash = object(&objects, "ConfigMap", "catering-sync-dashboard");
    assert_eq!(dash["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_same_text(
        str_of(
            &dash["data"]["catering-sync.json"],
            "data.catering-sync.json",
        ),
        &read(DASHBOARD),
        "ConfigMap catering-sync-dashboard",
        DASHBOARD,
    );

    // -- every rendered object lands in the overlay's namespace.
    let overlay = yaml(&format!("{K8S_OVERLAY}/kustomization.yaml"));
    let namespace = str_of(&overlay["namespace"], "overlay namespace");
    for ((kind, name), (file, doc)) in &objects {
        if file == K8S_OVERLAY {
            assert_eq!(
                doc["metadata"]["namespace"], namespace,
                "{kind}/{name} is in namespace {namespace}"
            );
        }
    }
    // The image override names the base Deployment's image.
    let base_deployment = yaml(&format!("{K8S_BASE}/deployment.yaml"));
    let base_pod = &base_deployment["spec"]["template"]["spec"];
    let base_image = str_of(&base_pod["containers"][0]["image"], "base image");
    for i in arr(&overlay["images"], "images") {
        let name = str_of(&i["name"], "images[].name");
        assert!(
            base_image.starts_with(&format!("{name}:")),
            "images[].name {name} is the base's {base_image}"
        );
    }
}

/// `rule` (a NetworkPolicy ingress or egress rule) allows `port`/`protocol` (no ports: all).
fn allows(rule: &Value, port: i64, protocol: &str) -> bool {
    match rule["ports"].as_array() {
        None => true,
        Some(ports) => ports.iter().any(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            (p["port"] == port || (port == 9464 && p["port"] == "http")) && proto == protocol
        }),
    }
}

/// `v` with every run of whitespace in its strings squashed to one space: kustomize re-emits
/// folded (`>-`) block scalars, and its YAML library adds a line break before more-indented
/// lines (PromQL does not care).
fn squash_whitespace(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.split_whitespace().collect::<Vec<_>>().join(" ")),
        Value::Array(a) => Value::Array(a.iter().map(squash_whitespace).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), squash_whitespace(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `carried` is `expected` byte for byte, or a panic naming the first differing line.
fn assert_same_text(carried: &str, expected: &str, what: &str, source: &str) {
    if carried != expected {
        let line = carried
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .map_or("the end".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "{what} differs from {source} at {line} ({} vs {} bytes): run scripts/sync-deploy.sh",
            carried.len(),
            expected.len()
        );
    }
}

/// The Strimzi example KafkaTopic whose topicName is `topic`.
fn strimzi_topic(topic: &str) -> Value {
    yaml_docs(STRIMZI_TOPICS)
        .into_iter()
        .find(|t| t["kind"] == "KafkaTopic" && t["spec"]["topicName"] == topic)
        .unwrap_or_else(|| panic!("{STRIMZI_TOPICS} has a KafkaTopic for {topic}"))
}

/// The base applies on a cluster without KEDA or the Prometheus Operator: core kinds only; the
/// example overlay uses every component, and each component is one.
#[test]
fn the_base_holds_only_core_kinds_and_the_overlay_every_component() {
    for doc in kustomize(K8S_BASE) {
        let api = str_of(&doc["apiVersion"], "apiVersion");
        assert!(
            ["v1", "apps/v1", "policy/v1"].contains(&api),
            "{K8S_BASE} renders only core kinds, not {api} {}",
            doc["kind"]
        );
    }
    let overlay = yaml(&format!("{K8S_OVERLAY}/kustomization.yaml"));
    let used: BTreeSet<String> = arr(&overlay["components"], "components")
        .iter()
        .map(|c| {
            let rel = str_of(c, "component");
            rel.rsplit('/').next().unwrap().to_string()
        })
        .collect();
    let mut shipped = BTreeSet::new();
    for entry in std::fs::read_dir(path(K8S_COMPONENTS)).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let k = yaml(&format!("{K8S_COMPONENTS}/{name}/kustomization.yaml"));
        assert_eq!(k["kind"], "Component", "{name}");
        assert_eq!(
            k["apiVersion"], "kustomize.config.k8s.io/v1alpha1",
            "{name}"
        );
        shipped.insert(name);
    }
    assert_eq!(used, shipped, "the example overlay uses every component");
}

/// The copies scripts/sync-deploy.sh keeps under deploy/k8s are their sources': the config the
/// base's generator reads, the dashboard, and the PrometheusRule's groups.
#[test]
fn the_copies_under_deploy_k8s_match_their_sources() {
    assert_same_text(
        &read(K8S_CONFIG_COPY),
        &read(EXAMPLE_CONFIG),
        K8S_CONFIG_COPY,
        EXAMPLE_CONFIG,
    );
    assert_same_text(
        &read(K8S_DASHBOARD_COPY),
        &read(DASHBOARD),
        K8S_DASHBOARD_COPY,
        DASHBOARD,
    );
    let rule = yaml(K8S_PROMETHEUS_RULE);
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["metadata"]["name"], "catering-sync");
    assert!(
        rule["spec"]["groups"] == yaml(ALERTS)["groups"],
        "{K8S_PROMETHEUS_RULE}: spec.groups differs from the groups of {ALERTS}: run \
         scripts/sync-deploy.sh"
    );
}

/// The Strimzi examples fit the config: its topic names, a changelog co-partitioned with the
/// input and compacted, a DLQ kept long enough to replay, and a user with the ACLs the service
/// needs.
#[test]
fn the_strimzi_examples_match_the_config() {
    let config = example_config();
    let k = &config.kafka;
    let input = strimzi_topic(&k.input_topic);
    let changelog = strimzi_topic(&k.changelog_topic);
    let dlq = strimzi_topic(&k.dlq_topic);
    assert_eq!(
        changelog["spec"]["partitions"], input["spec"]["partitions"],
        "the changelog has the input's partition count (checked at start-up)"
    );
    assert_eq!(changelog["spec"]["config"]["cleanup.policy"], "compact");
    let retention_ms = dlq["spec"]["config"]["retention.ms"]
        .as_i64()
        .expect("the DLQ's retention.ms");
    assert!(
        retention_ms >= 14 * 86_400_000,
        "dead letters are kept at least 14 days, to be replayed: {retention_ms} ms"
    );

    let users = yaml_docs(STRIMZI_USERS);
    let user = users
        .iter()
        .find(|u| u["kind"] == "KafkaUser" && u["metadata"]["name"] == "catering-sync")
        .expect("a KafkaUser catering-sync");
    let acls = arr(&user["spec"]["authorization"]["acls"], "acls");
    // (resource type, name the service uses, operation): granted by a literal or prefix ACL.
    let granted = |kind: &str, name: &str, op: &str| {
        acls.iter().any(|a| {
            let r = &a["resource"];
            let acl_name = r["name"].as_str().unwrap_or("");
            let matches = if r["patternType"] == "prefix" {
                name.starts_with(acl_name)
            } else {
                name == acl_name
            };
            r["type"] == kind
                && matches
                && a["operations"]
                    .as_array()
                    .is_some_and(|ops| ops.iter().any(|o| o == op))
        })
    };
    let restore_group = format!("{}.restore", k.group_id);
    for (kind, name, op) in [
        ("topic", k.input_topic.as_str(), "Read"),
        ("topic", k.changelog_topic.as_str(), "Read"),
        ("topic", k.changelog_topic.as_str(), "Write"),
        ("topic", k.dlq_topic.as_str(), "Write"),
        ("group", k.group_id.as_str(), "Read"),
        ("group", restore_group.as_str(), "Read"),
    ] {
        assert!(
            granted(kind, name, op),
            "{STRIMZI_USERS}: catering-sync may {op} {kind} {name}"
        );
    }
    assert!(
        !granted("topic", k.input_topic.as_str(), "Write"),
        "the service's user cannot write to its own input"
    );
}
