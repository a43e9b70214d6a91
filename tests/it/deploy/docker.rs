//! Deployment artefacts: the Dockerfile: multi-stage, locked release build of the production binary, non-root.

use super::*;

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
