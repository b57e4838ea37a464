//! The command line's contract: exit codes, configuration problems named by file and key, all at
//! once, environment overrides.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn teleavis(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_teleavis"));
    c.args(args).env_remove("TELEAVIS_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// A configuration with several mistakes at once.
fn bad_config(dir: &std::path::Path) -> std::path::PathBuf {
    let key = dir.join("gateway.key");
    std::fs::write(&key, "not a key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = dir.join("teleavis.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[database]
url = "sqlite:///nonexistent-folder/teleavis.db"
[gateway]
address = "teleexpertise@hopital.test"
admin_address = "dsi@hopital.test"
[imap]
host = "127.0.0.1"
port = 0
tls = "tls-please"
username = "teleexpertise@hopital.test"
password_file = "{d}/missing.password"
[smtp]
host = "127.0.0.1"
username = "teleexpertise@hopital.test"
password_file = "{d}/missing.password"
[smime]
certificate = "{d}/missing.crt"
private_key = "{key}"
trust_anchors = "{d}/trust"
[[category]]
id = "infectio"
name = "Maladies infectieuses"
group_address = "infectio@hopital.test"
"#,
            d = dir.display(),
            key = key.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn check_config_reports_every_problem_with_file_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bad_config(dir.path());
    let cfg_s = cfg.to_str().unwrap();
    // Every problem in one run: types and enums, and the files.
    let out = teleavis(&["--config", cfg_s, "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (key, what) in [
        ("imap.port", "not a port"),
        ("imap.tls", "tls-please"),
        ("database.url", "does not exist"),
        ("imap.password_file", "missing.password"),
        ("smime.certificate", "missing.crt"),
        ("smime.private_key", "readable by others"),
        ("smime.trust_anchors", "does not exist"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{cfg_s}: {key}: ")) && l.contains(what)),
            "{key} / {what} not in:\n{err}"
        );
    }

    // The environment overrides the file.
    let out = teleavis(
        &["--config", cfg_s, "check-config"],
        &[
            ("TELEAVIS__IMAP__PORT", "993"),
            ("TELEAVIS__IMAP__TLS", "implicit"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("imap.port") && !err.contains("imap.tls"),
        "{err}"
    );
    assert!(err.contains("smime.certificate"), "{err}");
}

#[test]
fn inline_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bad_config(dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[smtp]\n", "[smtp]\npassword = \"hunter2\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = teleavis(&["--config", cfg.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("smtp.password") && err.contains("password_file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "a secret must never be echoed");
}

#[test]
fn missing_file_and_usage_errors_exit_2() {
    let out = teleavis(
        &["--config", "/nonexistent/teleavis.toml", "check-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/teleavis.toml"));
    let out = teleavis(&["frobnicate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // The config path also comes from $TELEAVIS_CONFIG.
    let out = teleavis(
        &["check-config"],
        &[("TELEAVIS_CONFIG", "/nonexistent/from-env.toml")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/from-env.toml"));
}

#[test]
fn a_form_template_the_daemon_would_refuse_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bad_config(dir.path());
    // Two fields of the category answer to the same label: every request of it would fail.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "[[category.fields]]\nkey = \"terrain\"\nlabel = \"Terrain\"\n\
         [[category.fields]]\nkey = \"antecedents\"\nlabel = \"terrain\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let out = teleavis(&["--config", cfg_s, "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("{cfg_s}: category[0].fields: "))
                && l.contains("already used")),
        "{err}"
    );
}

#[test]
fn check_config_names_a_deadline_at_or_below_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bad_config(dir.path());
    let cfg_s = cfg.to_str().unwrap();
    for (line, key) in [
        ("deadline_hours = 0", "deadline_hours"),
        ("deadline_hours = -1.5", "deadline_hours"),
        ("urgent_deadline_minutes = 0", "urgent_deadline_minutes"),
    ] {
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "group_address = \"infectio@hopital.test\"\n",
            &format!("group_address = \"infectio@hopital.test\"\n{line}\n"),
        );
        let one = dir.path().join("one.toml");
        std::fs::write(&one, text).unwrap();
        let one_s = one.to_str().unwrap();
        let out = teleavis(&["--config", one_s, "check-config"], &[]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{one_s}: category[0].{key}: "))),
            "{line}: {key} not in:\n{err}"
        );
    }
    // A fraction of an hour is a deadline.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "group_address = \"infectio@hopital.test\"\n",
        "group_address = \"infectio@hopital.test\"\ndeadline_hours = 0.5\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = teleavis(&["--config", cfg_s, "check-config"], &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("deadline_hours"));
}
