//! `Settings::problems`: semantic validation of the typed settings (files, permissions, consistency).

use std::path::Path;

use super::{ImapAuth, KeyPairSettings, Problem, Settings};

impl Settings {
    /// Semantic checks on typed settings: files that must exist, keys that must be private,
    /// combinations that must agree.
    pub fn problems(&self, file: &Path) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut p = |key: &str, message: String| {
            out.push(Problem {
                file: file.to_path_buf(),
                key: key.into(),
                message,
            })
        };

        if let Some(l) = &self.metrics.listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            p(
                "metrics.listen",
                format!("{l:?} is not an address and port such as 127.0.0.1:9464"),
            );
        }

        let url = &self.database.url;
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest
                .trim_start_matches("//")
                .split('?')
                .next()
                .unwrap_or("");
            if path != ":memory:" && !path.is_empty() {
                let parent = Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty());
                if let Some(dir) = parent
                    && !dir.is_dir()
                {
                    p(
                        "database.url",
                        format!("the folder {} does not exist", dir.display()),
                    );
                }
            }
        } else if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p(
                "database.url",
                format!("{url:?}: expected sqlite://… or postgres://…"),
            );
        }
        if self.database.max_connections < 2 {
            // A message's transaction holds one connection while its stages read through
            // another: with a single one, every message would wait out the acquire timeout.
            p("database.max_connections", "must be at least 2".into());
        }
        if self.gateway.timezone.parse::<chrono_tz::Tz>().is_err() {
            p(
                "gateway.timezone",
                format!("{:?} is not an IANA time zone", self.gateway.timezone),
            );
        }
        if self.gateway.address.plus_tag().is_some() {
            p(
                "gateway.address",
                "must not carry a +tag (tags are added per category and thread)".into(),
            );
        }
        self.record.problems(&self.gateway.network, &mut p);
        self.billing.problems(&mut p);

        let i = &self.imap;
        if i.host.trim().is_empty() {
            p("imap.host", "empty".into());
        }
        match i.auth {
            ImapAuth::Plain | ImapAuth::Login => match &i.password_file {
                Some(f) => check_secret_file(f, "imap.password_file", &mut p),
                None => p(
                    "imap.password_file",
                    format!("required with auth = {:?}", i.auth).to_lowercase(),
                ),
            },
            ImapAuth::External => {
                match &i.client_certificate {
                    Some(f) => check_readable(f, "imap.client_certificate", &mut p),
                    None => p(
                        "imap.client_certificate",
                        "required with auth = \"external\"".into(),
                    ),
                }
                match &i.client_key {
                    Some(f) => check_secret_file(f, "imap.client_key", &mut p),
                    None => p(
                        "imap.client_key",
                        "required with auth = \"external\"".into(),
                    ),
                }
            }
        }
        if let Some(f) = &i.ca_file {
            check_readable(f, "imap.ca_file", &mut p);
        }
        for (key, name) in [
            ("imap.mailbox", &i.mailbox),
            ("imap.processed_mailbox", &i.processed_mailbox),
            ("imap.quarantine_mailbox", &i.quarantine_mailbox),
        ] {
            if name.trim().is_empty() {
                p(key, "empty".into());
            }
        }
        if i.processed_mailbox == i.mailbox || i.quarantine_mailbox == i.mailbox {
            p(
                "imap.processed_mailbox",
                "must differ from imap.mailbox".into(),
            );
        }
        if i.idle_seconds == 0 || i.idle_seconds >= 29 * 60 {
            p(
                "imap.idle_seconds",
                "must be between 1 and 1739 (RFC 2177: re-issue IDLE before 29 minutes)".into(),
            );
        }
        if i.poll_seconds == 0 {
            p("imap.poll_seconds", "must be at least 1".into());
        }

        let s = &self.smtp;
        if s.host.trim().is_empty() {
            p("smtp.host", "empty".into());
        }
        match (&s.username, &s.password_file) {
            (Some(_), Some(f)) => check_secret_file(f, "smtp.password_file", &mut p),
            (Some(_), None) => p(
                "smtp.password_file",
                "required when smtp.username is set".into(),
            ),
            (None, Some(_)) => p(
                "smtp.username",
                "required when smtp.password_file is set".into(),
            ),
            (None, None) => {}
        }
        match (&s.client_certificate, &s.client_key) {
            (Some(c), Some(k)) => {
                check_readable(c, "smtp.client_certificate", &mut p);
                check_secret_file(k, "smtp.client_key", &mut p);
            }
            (Some(_), None) => p(
                "smtp.client_key",
                "required with smtp.client_certificate".into(),
            ),
            (None, Some(_)) => p(
                "smtp.client_certificate",
                "required with smtp.client_key".into(),
            ),
            (None, None) => {}
        }
        if let Some(f) = &s.ca_file {
            check_readable(f, "smtp.ca_file", &mut p);
        }

        let m = &self.smime;
        check_key_pair(
            "smime",
            &KeyPairSettings {
                certificate: m.certificate.clone(),
                private_key: m.private_key.clone(),
                pkcs12: m.pkcs12.clone(),
                pkcs12_password_file: m.pkcs12_password_file.clone(),
            },
            &mut p,
        );
        for (n, prev) in m.previous.iter().enumerate() {
            check_key_pair(&format!("smime.previous[{n}]"), prev, &mut p);
        }
        if !m.trust_anchors.exists() {
            p(
                "smime.trust_anchors",
                format!("{} does not exist", m.trust_anchors.display()),
            );
        }
        for (key, dir) in [
            ("smime.crl_dir", &m.crl_dir),
            ("smime.recipients_dir", &m.recipients_dir),
        ] {
            if let Some(d) = dir
                && !d.is_dir()
            {
                p(key, format!("{} is not a folder", d.display()));
            }
        }
        if m.require_crl && m.crl_dir.is_none() {
            p("smime.crl_dir", "required with require_crl = true".into());
        }
        if !(1024..=16384).contains(&m.min_rsa_bits) {
            p(
                "smime.min_rsa_bits",
                format!("{} is not between 1024 and 16384", m.min_rsa_bits),
            );
        }

        let o = &self.outbox;
        if o.min_backoff_seconds == 0 || o.min_backoff_seconds > o.max_backoff_seconds {
            p(
                "outbox.min_backoff_seconds",
                "must be at least 1 and not above max_backoff_seconds".into(),
            );
        }
        if !(1..=32).contains(&o.workers) {
            p("outbox.workers", "must be between 1 and 32".into());
        }
        if o.max_lifetime_hours == 0 {
            p("outbox.max_lifetime_hours", "must be at least 1".into());
        }

        let mut seen = std::collections::HashSet::new();
        for (n, c) in self.categories.iter().enumerate() {
            let key = |k: &str| format!("category[{n}].{k}");
            if c.id.is_empty()
                || !c
                    .id
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            {
                p(
                    &key("id"),
                    format!("{:?}: use lowercase letters, digits and '-'", c.id),
                );
            }
            if c.id.starts_with("te-") {
                p(
                    &key("id"),
                    "must not start with \"te-\" (reserved for thread tokens)".into(),
                );
            }
            if !seen.insert(c.id.clone()) {
                p(&key("id"), format!("{:?} is defined twice", c.id));
            }
            if c.name.trim().is_empty() {
                p(&key("name"), "empty".into());
            }
            // At least a second, at most ten years.
            if !(c.deadline_hours.is_finite()
                && c.deadline_hours * 3600.0 >= 1.0
                && c.deadline_hours <= 87_600.0)
            {
                p(
                    &key("deadline_hours"),
                    "must be a number of hours above 0 (fractions allowed)".into(),
                );
            }
            if c.urgent_deadline_minutes == Some(0) {
                p(&key("urgent_deadline_minutes"), "must be at least 1".into());
            }
            for (f_n, f) in c.fields.iter().enumerate() {
                if !["text", "yesno", "date", "choice"].contains(&f.kind.as_str()) {
                    p(
                        &key(&format!("fields[{f_n}].kind")),
                        format!("{:?} is not one of text, yesno, date, choice", f.kind),
                    );
                }
                if f.kind == "choice" && f.choices.is_empty() {
                    p(
                        &key(&format!("fields[{f_n}].choices")),
                        "required with kind = \"choice\"".into(),
                    );
                }
            }
        }
        if self.categories.is_empty() {
            p("category", "at least one [[category]] is needed".into());
        }

        let d = &self.directory;
        if let Some(f) = &d.file {
            check_readable(f, "directory.file", &mut p);
        }
        if d.check_seconds == 0 {
            p("directory.check_seconds", "must be at least 1".into());
        }
        if d.requester_professions.iter().all(|x| x.trim().is_empty()) {
            p(
                "directory.requester_professions",
                "empty: nobody could request".into(),
            );
        }
        if d.expert_professions.iter().all(|x| x.trim().is_empty()) {
            p(
                "directory.expert_professions",
                "empty: nobody could answer".into(),
            );
        }
        // The same compilation the daemon does at start: a form template it would reject
        // (duplicate keys or labels…) fails here.
        for problem in crate::catalogue::Catalogue::compile(self).1 {
            let prefix = format!("{}[", problem.key);
            // A field already reported above (its kind, its choices) is not reported twice.
            if !out.iter().any(|q| q.key.starts_with(&prefix)) {
                out.push(Problem {
                    file: file.to_path_buf(),
                    key: problem.key,
                    message: problem.message,
                });
            }
        }
        out
    }
}

fn check_key_pair(prefix: &str, k: &KeyPairSettings, p: &mut impl FnMut(&str, String)) {
    match (&k.certificate, &k.private_key, &k.pkcs12) {
        (_, _, Some(p12)) => {
            check_secret_file(p12, &format!("{prefix}.pkcs12"), p);
            match &k.pkcs12_password_file {
                Some(f) => check_secret_file(f, &format!("{prefix}.pkcs12_password_file"), p),
                None => p(
                    &format!("{prefix}.pkcs12_password_file"),
                    "required with pkcs12".into(),
                ),
            }
        }
        (Some(c), Some(key), None) => {
            check_readable(c, &format!("{prefix}.certificate"), p);
            check_secret_file(key, &format!("{prefix}.private_key"), p);
        }
        (Some(_), None, None) => p(
            &format!("{prefix}.private_key"),
            "required with certificate".into(),
        ),
        (None, _, None) => p(
            &format!("{prefix}.certificate"),
            "missing: set certificate + private_key, or pkcs12".into(),
        ),
    }
}

fn check_readable(path: &Path, key: &str, p: &mut impl FnMut(&str, String)) {
    if let Err(e) = std::fs::File::open(path) {
        p(key, format!("cannot read {}: {e}", path.display()));
    }
}

/// A secret (key, password, PKCS#12) must exist and be private to its owner.
fn check_secret_file(path: &Path, key: &str, p: &mut impl FnMut(&str, String)) {
    match private_mode(path) {
        Err(problem) => p(key, problem),
        Ok(()) => check_readable(path, key, p),
    }
}

/// The one rule for files holding secrets: no access for other users. The group may read
/// (root:teleavis 0640 is the usual packaging).
pub fn private_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{} is readable by others (mode {:o}): chmod o-rwx it (0600 or 0640)",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}
