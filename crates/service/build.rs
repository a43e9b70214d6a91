//! The revision for `catering_sync_build_info`: `CATERING_SYNC_REVISION` when the build sets it
//! (the Dockerfile's `REVISION` argument: an image build has no `.git`), else the checkout's
//! `git rev-parse --short=12 HEAD`, else none ("unknown").

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CATERING_SYNC_REVISION");
    if std::env::var_os("CATERING_SYNC_REVISION").is_some() {
        return;
    }
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    // Rebuilt when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit),
    // loose or packed. Only existing paths: cargo reruns a build script on every build when
    // a path it watches does not exist.
    // logs/HEAD moves on every commit and checkout, whatever the ref storage.
    let mut watched = vec![
        "HEAD".to_string(),
        "packed-refs".to_string(),
        "logs/HEAD".to_string(),
    ];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for path in watched {
        if let Some(p) = git(&["rev-parse", "--git-path", &path]) {
            if std::path::Path::new(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    println!("cargo:rustc-env=CATERING_SYNC_REVISION={head}");
}
