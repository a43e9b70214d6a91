//! Deployment artefacts: the Kubernetes manifests: fields, probes, resources, the ConfigMap.

use super::*;

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
