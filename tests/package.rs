//! The Debian package on this very machine, as hospital IT installs it: built by
//! `scripts/build-deb.sh`, installed with `apt-get install ./teleavis_*.deb`, checked (version,
//! man page, completions, units, user, folders, nothing enabled), removed (configuration and data
//! stay), purged (configuration goes, the database stays). As root only; it cleans up after
//! itself.
//!
//! The package is built from the debug-profile binary `cargo test` has just built
//! (`--profile dev`): this test checks the packaging, not the optimiser, and a release build
//! would double the suite's compile time. The shipped package is the release one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apt(args: &[&str]) -> String {
    run(Command::new("apt-get")
        .args(["-y", "-q", "-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

fn uid_of(user: &str) -> u32 {
    run(Command::new("id").args(["-u", user]))
        .trim()
        .parse()
        .unwrap()
}

/// `systemd-analyze security --offline=true` of one unit file: its overall exposure.
fn exposure(unit: &Path) -> f64 {
    let text = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit));
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    line.split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line}"))
}

#[test]
fn the_package_installs_removes_and_purges_cleanly() {
    if !nix_is_root() {
        eprintln!("\n!!!!! NOTICE: not root: the package test is SKIPPED !!!!!\n");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let deb = run(Command::new(root.join("scripts/build-deb.sh"))
        .args(["--profile", "dev", "--output"])
        .arg(out_dir.path())
        .current_dir(root));
    let deb = deb.trim().to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.ends_with(&format!("/teleavis_{version}_amd64.deb")),
        "package name: {deb}"
    );
    // A run that died half-way left the package in: start from a clean machine.
    if Command::new("dpkg")
        .args(["-s", "teleavis"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("NOTICE: teleavis was installed: purging it first");
        apt(&["purge", "teleavis"]);
    }
    let state_existed = Path::new("/var/lib/teleavis").exists();

    // Install exactly as the README says (a path with a slash: apt-get reads the file).
    apt(&["install", &deb]);
    let shown = run(Command::new("/usr/bin/teleavis").arg("--version"));
    assert!(
        shown.starts_with(&format!("teleavis {version} (commit ")),
        "{shown}"
    );
    if let Ok(o) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        && o.status.success()
    {
        let head = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(shown.contains(&head), "{shown} does not name HEAD {head}");
    }
    let page = run(Command::new("man").args(["-w", "teleavis"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/teleavis.1.gz");
    let man_text = run(Command::new("man")
        .args(["-P", "cat", "teleavis"])
        .env("MANWIDTH", "100"));
    let man_text = man_text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        man_text.contains("teleavis-status(1)") && man_text.contains("Exit status: 0 success"),
        "{man_text}"
    );
    let bash = std::fs::read_to_string("/usr/share/bash-completion/completions/teleavis").unwrap();
    assert!(bash.contains("threads") && bash.contains("backup"));
    let zsh = std::fs::read_to_string("/usr/share/zsh/vendor-completions/_teleavis").unwrap();
    assert!(zsh.starts_with("#compdef teleavis"));

    // The units: valid, hardened, and not enabled (nothing configured yet).
    for unit in ["teleavis.service", "teleavis@.service"] {
        let path = Path::new("/lib/systemd/system").join(unit);
        assert!(path.exists(), "{unit} not installed");
        let level = exposure(&path);
        assert!(level <= 2.0, "{unit}: exposure {level} > 2.0");
        assert!(
            !Path::new("/etc/systemd/system/multi-user.target.wants")
                .join(unit)
                .exists(),
            "{unit} enabled by the package"
        );
    }
    // verify needs a unit name for the template: an instance of it.
    let verify = Command::new("systemd-analyze")
        .args([
            "verify",
            "/lib/systemd/system/teleavis.service",
            "teleavis@main.service",
        ])
        .output()
        .unwrap();
    let verify_err = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success(),
        "systemd-analyze verify:\n{verify_err}"
    );
    assert!(
        !verify_err.contains("teleavis"),
        "systemd-analyze verify:\n{verify_err}"
    );

    // The system user and the folders.
    let passwd = run(Command::new("getent").args(["passwd", "teleavis"]));
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "not a system user: {passwd}"
    );
    assert_eq!(fields[5], "/var/lib/teleavis");
    assert_eq!(fields[6], "/usr/sbin/nologin");
    let uid = uid_of("teleavis");
    if !state_existed {
        assert_eq!(mode("/var/lib/teleavis"), 0o700);
        assert_eq!(std::fs::metadata("/var/lib/teleavis").unwrap().uid(), uid);
    }
    assert_eq!(mode("/etc/teleavis/secrets"), 0o700);
    assert_eq!(std::fs::metadata("/etc/teleavis/secrets").unwrap().uid(), 0);
    assert_eq!(mode("/etc/teleavis/certs/trust"), 0o755);
    assert_eq!(mode("/etc/teleavis/teleavis.toml"), 0o644);
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/teleavis.conffiles").unwrap();
    assert!(conffiles.contains("/etc/teleavis/teleavis.toml"));

    // The operator's work: an edited configuration, a certificate, a database.
    let marker = "\n# edited by the operator\n";
    let mut conf = std::fs::read_to_string("/etc/teleavis/teleavis.toml").unwrap();
    conf.push_str(marker);
    std::fs::write("/etc/teleavis/teleavis.toml", &conf).unwrap();
    std::fs::write("/etc/teleavis/certs/trust/ac-test.pem", "not a real CA\n").unwrap();
    let db = "/var/lib/teleavis/teleavis.db";
    let db_existed = Path::new(db).exists();
    if !db_existed {
        std::fs::write(db, b"the database").unwrap();
    }

    // Reinstalling (the upgrade path of the maintainer scripts) keeps the operator's edits.
    apt(&["install", "--reinstall", &deb]);
    let kept = std::fs::read_to_string("/etc/teleavis/teleavis.toml").unwrap();
    assert!(
        kept.ends_with(marker),
        "configuration overwritten on upgrade"
    );
    assert!(Path::new("/usr/bin/teleavis").exists());

    // remove: the binary goes, everything else stays.
    apt(&["remove", "teleavis"]);
    assert!(!Path::new("/usr/bin/teleavis").exists());
    assert!(!Path::new("/lib/systemd/system/teleavis.service").exists());
    let kept = std::fs::read_to_string("/etc/teleavis/teleavis.toml").unwrap();
    assert!(kept.ends_with(marker), "configuration not kept on remove");
    assert!(Path::new(db).exists(), "database removed on remove");
    assert_eq!(uid_of("teleavis"), uid);

    // purge: the configuration goes, the certificates and the database stay.
    apt(&["purge", "teleavis"]);
    assert!(!Path::new("/etc/teleavis/teleavis.toml").exists());
    assert!(Path::new("/etc/teleavis/certs/trust/ac-test.pem").exists());
    assert!(
        !Path::new("/etc/teleavis/secrets").exists(),
        "empty secrets folder kept"
    );
    assert!(Path::new(db).exists(), "database removed on purge");

    // Leave the machine as found.
    let _ = std::fs::remove_file("/etc/teleavis/certs/trust/ac-test.pem");
    for d in [
        "/etc/teleavis/certs/trust",
        "/etc/teleavis/certs/crl",
        "/etc/teleavis/certs/recipients",
        "/etc/teleavis/certs",
        "/etc/teleavis",
    ] {
        let _ = std::fs::remove_dir(d);
    }
    if !db_existed {
        let _ = std::fs::remove_file(db);
    }
    if !state_existed {
        let _ = std::fs::remove_dir("/var/lib/teleavis");
    }
}

fn nix_is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}
