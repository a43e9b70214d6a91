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

/// `ARG NAME=default` of `inst` as (NAME, default), quotes removed ("" when none).
fn args_declared(inst: &[(String, String)]) -> BTreeMap<String, String> {
    inst.iter()
        .filter(|(i, _)| i == "ARG")
        .map(|(_, a)| {
            let (name, default) = a.split_once('=').unwrap_or((a.as_str(), ""));
            (
                name.trim().to_string(),
                default.trim().trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// `text` with `${NAME}` replaced by the ARG defaults of `args`.
fn resolve(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, default) in args {
        out = out.replace(&format!("${{{name}}}"), default);
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
    // The base images are build arguments (a mirror or a pinned digest), declared before the
    // first FROM with the defaults below.
    let global = args_declared(&inst[..froms[0]]);
    assert_eq!(
        global.get("RUST_IMAGE").map(String::as_str),
        Some("rust:1.95-bookworm"),
        "ARG RUST_IMAGE before the first FROM: {global:?}"
    );
    assert_eq!(
        global.get("RUNTIME_IMAGE").map(String::as_str),
        Some("gcr.io/distroless/cc-debian12:nonroot"),
        "ARG RUNTIME_IMAGE before the first FROM: {global:?}"
    );
    let first = resolve(&inst[froms[0]].1, &global);
    assert!(
        first.starts_with("rust:") && first.to_lowercase().contains(" as "),
        "a named Rust build stage: {first}"
    );
    let last = resolve(&inst[*froms.last().unwrap()].1, &global);
    assert!(
        last.starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "the runtime stage is distroless cc, non-root: {last}"
    );
    let build_stage = &inst[froms[0]..*froms.last().unwrap()];
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
    // The revision reaches the binary (catering_sync_build_info{revision}): an image build has
    // no .git for build.rs to ask.
    assert!(
        args_declared(build_stage).contains_key("REVISION"),
        "ARG REVISION in the build stage"
    );
    assert!(
        build.1.contains("CATERING_SYNC_REVISION=\"${REVISION"),
        "the cargo build gets CATERING_SYNC_REVISION from the REVISION argument: {}",
        build.1
    );
    // A crates.io mirror, when given, as cargo source replacement.
    assert!(
        args_declared(build_stage).contains_key("CARGO_REGISTRY_MIRROR"),
        "ARG CARGO_REGISTRY_MIRROR in the build stage"
    );
    assert!(
        build_stage.iter().any(|(i, a)| i == "RUN"
            && a.contains("CARGO_REGISTRY_MIRROR")
            && a.contains("replace-with")
            && a.contains("config.toml")),
        "CARGO_REGISTRY_MIRROR writes a cargo source replacement"
    );

    // OCI labels in the runtime stage, version and revision from the build arguments.
    let runtime_args = args_declared(runtime);
    for a in ["VERSION", "REVISION"] {
        assert!(runtime_args.contains_key(a), "ARG {a} in the runtime stage");
    }
    let labels: String = runtime
        .iter()
        .filter(|(i, _)| i == "LABEL")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "OCI label org.opencontainers.image.{key}: {labels}"
        );
    }
    assert!(labels.contains("org.opencontainers.image.version=\"${VERSION}\""));
    assert!(labels.contains("org.opencontainers.image.revision=\"${REVISION}\""));
    assert!(
        labels.contains("org.opencontainers.image.licenses=\"Apache-2.0\""),
        "the licence of Cargo.toml: {labels}"
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
    let deployment = yaml("deploy/k8s/base/deployment.yaml");
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

/// The build context (the repository root) sends only what the Dockerfile copies, and never key
/// material or build output.
#[test]
fn the_dockerignore_sends_only_what_the_build_copies() {
    let text = read(".dockerignore");
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        patterns.first(),
        Some(&"*"),
        "everything is left out first: {patterns:?}"
    );
    // Re-included: exactly the sources of the build stage's COPY instructions.
    let included: BTreeSet<&str> = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    let copied: BTreeSet<String> = dockerfile()
        .iter()
        .filter(|(i, a)| i == "COPY" && !a.contains("--from="))
        .flat_map(|(_, a)| {
            let words: Vec<&str> = a.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let copied: BTreeSet<&str> = copied.iter().map(String::as_str).collect();
    assert_eq!(
        included, copied,
        ".dockerignore re-includes what the Dockerfile copies"
    );
    // Excluded again inside those: build output and key files.
    for p in ["**/target/", "**/node_modules/", "**/*.pem", "**/*.key"] {
        assert!(patterns.contains(&p), ".dockerignore excludes {p}");
    }
    // What is left out by `*`, named for the reader of this test: .git, target, keys, tests.
    for p in [".git", "target", "keys", "tests", "deploy"] {
        assert!(!included.contains(p), "{p} stays out of the build context");
    }
}
