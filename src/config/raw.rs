//! Checks on the raw TOML values (types, enums, ports, required keys, inline secrets), with the environment overrides applied.

use std::path::Path;

use super::Problem;

const ENUMS: &[(&str, &[&str])] = &[
    ("imap.tls", &["implicit", "starttls"]),
    ("smtp.tls", &["implicit", "starttls"]),
    ("imap.auth", &["plain", "login", "external"]),
    (
        "smime.encrypt_outgoing",
        &["always", "when-possible", "never"],
    ),
    ("smime.cipher", &["aes-256-gcm", "aes-256-cbc"]),
    ("log.format", &["text", "json"]),
];
const PORTS: &[&str] = &["imap.port", "smtp.port"];
const REQUIRED: &[&str] = &[
    "gateway.address",
    "gateway.admin_address",
    "imap.host",
    "imap.username",
    "smtp.host",
    "smime.trust_anchors",
];

/// Problems visible on the raw values, and the table without the keys at fault (`None` when
/// the file cannot be read at all).
pub(super) fn raw_problems(path: &Path) -> (Vec<Problem>, Option<toml::Table>) {
    let problem = |key: &str, message: String| Problem {
        file: path.to_path_buf(),
        key: key.into(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return (
                vec![problem("-", format!("cannot read the file: {e}"))],
                None,
            );
        }
    };
    let mut value: toml::Table = match text.parse() {
        Ok(v) => v,
        Err(e) => return (vec![problem("-", format!("not valid TOML: {e}"))], None),
    };
    apply_env_overrides(&mut value);
    let mut out = Vec::new();
    let get = |key: &str| -> Option<&toml::Value> {
        let (section, name) = key.split_once('.')?;
        value.get(section)?.get(name)
    };
    for (key, allowed) in ENUMS {
        if let Some(v) = get(key) {
            match v.as_str() {
                Some(s) if allowed.contains(&s) => {}
                _ => out.push(problem(
                    key,
                    format!("{v} is not one of {}", allowed.join(", ")),
                )),
            }
        }
    }
    for key in PORTS {
        if let Some(v) = get(key) {
            let ok = match v {
                toml::Value::Integer(n) => (1..=65535).contains(n),
                toml::Value::String(s) => s.parse::<u16>().is_ok_and(|n| n > 0),
                _ => false,
            };
            if !ok {
                out.push(problem(key, format!("{v} is not a port (1-65535)")));
            }
        }
    }
    for key in REQUIRED {
        if get(key).is_none() {
            out.push(problem(key, "missing (required)".into()));
        }
    }
    for section in ["imap", "smtp", "smime", "database"] {
        for secret in ["password", "pkcs12_password"] {
            if value.get(section).and_then(|s| s.get(secret)).is_some() {
                out.push(problem(
                    &format!("{section}.{secret}"),
                    format!("secrets are never written in the file: put it in a root-only file and set {secret}_file"),
                ));
            }
        }
    }
    let mut cleaned = value.clone();
    for p in &out {
        if let Some((section, name)) = p.key.split_once('.')
            && let Some(t) = cleaned.get_mut(section).and_then(|v| v.as_table_mut())
        {
            t.remove(name);
        }
    }
    (out, Some(cleaned))
}

/// Mirrors what the `config` crate does with `TELEAVIS__SECTION__KEY`, so raw checks see the
/// values the daemon will use.
fn apply_env_overrides(table: &mut toml::Table) {
    for (k, v) in std::env::vars() {
        let Some((section, key)) = k
            .strip_prefix("TELEAVIS__")
            .and_then(|r| r.split_once("__"))
        else {
            continue;
        };
        let value = v
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or(toml::Value::String(v));
        let entry = table
            .entry(section.to_lowercase())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(t) = entry.as_table_mut() {
            t.insert(key.to_lowercase(), value);
        }
    }
}
