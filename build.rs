//! Build script: records the git commit the binary is built from (`teleavis --version`).
//! Order: `TELEAVIS_GIT_COMMIT` from the environment (packagers building from a tarball), then
//! `git rev-parse`, then the `.cargo_vcs_info.json` that `cargo package` leaves in a crate
//! tarball, else `unknown`. Never fails the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn from_vcs_info() -> Option<String> {
    let text = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let start = text.find("\"sha1\"")?;
    let rest = &text[start + 6..];
    let rest = &rest[rest.find('"')? + 1..];
    let sha = &rest[..rest.find('"')?];
    Some(sha.chars().take(12).collect())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TELEAVIS_GIT_COMMIT");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points to.
    for what in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", what])
            && Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(p) = git(&["rev-parse", "--git-common-dir"]) {
        let packed = Path::new(&p).join("packed-refs");
        if packed.exists() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    }
    let commit = std::env::var("TELEAVIS_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .or_else(from_vcs_info)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TELEAVIS_GIT_COMMIT={commit}");
}
