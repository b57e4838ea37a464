//! Typed settings: the TOML file plus `TELEAVIS__SECTION__KEY` overrides, and their validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::address::EmailAddress;

mod record;
pub use record::{BillingSettings, RecordSettings, TariffSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub database: DatabaseSettings,
    pub gateway: GatewaySettings,
    pub imap: ImapSettings,
    pub smtp: SmtpSettings,
    pub smime: SmimeSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default, rename = "category")]
    pub categories: Vec<CategorySettings>,
    #[serde(default)]
    pub metrics: MetricsSettings,
    #[serde(default)]
    pub record: RecordSettings,
    #[serde(default)]
    pub billing: BillingSettings,
    /// The national MSSanté directory (issue 10).
    #[serde(default)]
    pub directory: DirectorySettings,
}

/// `[metrics]`: the Prometheus endpoint (DESIGN.md, *Operations*).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// `host:port` serving `/metrics`; absent: no metrics.
    pub listen: Option<String>,
}

impl MetricsSettings {
    /// The parsed address (validated by [`Settings::problems`]).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }
}

/// `[directory]`: the national directory and who may request or answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// An extraction re-imported by the daemon whenever it changes (size or modification time).
    pub file: Option<PathBuf>,
    /// How often the daemon looks at `file`.
    #[serde(default = "default_directory_check_seconds")]
    pub check_seconds: u64,
    /// Quarantine as `directory_mismatch` a signer whose certificate's RPPS is not the
    /// directory's for that address (false: process it with an audit warning).
    #[serde(default)]
    pub require_match: bool,
    /// Professions (`Libellé Profession`, without case, accents or plural) that may request.
    #[serde(default = "default_requester_professions")]
    pub requester_professions: Vec<String>,
    /// Professions that may answer.
    #[serde(default = "default_expert_professions")]
    pub expert_professions: Vec<String>,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            file: None,
            check_seconds: default_directory_check_seconds(),
            require_match: false,
            requester_professions: default_requester_professions(),
            expert_professions: default_expert_professions(),
        }
    }
}

fn default_directory_check_seconds() -> u64 {
    300
}
fn default_requester_professions() -> Vec<String> {
    [
        "Médecin",
        "Sage-Femme",
        "Infirmier",
        "Masseur-Kinésithérapeute",
        "Orthoptiste",
        "Orthophoniste",
    ]
    .map(String::from)
    .to_vec()
}
fn default_expert_professions() -> Vec<String> {
    ["Médecin", "Sage-Femme"].map(String::from).to_vec()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(default = "default_db_url")]
    pub url: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_db_url(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_db_url() -> String {
    "sqlite:///var/lib/teleavis/teleavis.db".into()
}
fn default_max_connections() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub address: EmailAddress,
    #[serde(default = "default_display_name")]
    pub display_name: String,
    #[serde(default)]
    pub network: String,
    pub admin_address: EmailAddress,
    #[serde(default = "default_auto_close_days")]
    pub auto_close_days: u32,
    /// Automatic replies allowed per sender and hour (RFC 3834 rate limit).
    #[serde(default = "default_auto_reply_per_hour")]
    pub auto_reply_per_hour: u32,
    /// IANA time zone used for dates shown to people (acknowledgements, compte-rendu).
    #[serde(default = "default_timezone")]
    pub timezone: String,
}

fn default_display_name() -> String {
    "Téléexpertise".into()
}
fn default_auto_close_days() -> u32 {
    7
}
fn default_auto_reply_per_hour() -> u32 {
    5
}
fn default_timezone() -> String {
    "Europe/Paris".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Implicit,
    Starttls,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ImapAuth {
    Plain,
    Login,
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_implicit")]
    pub tls: TlsMode,
    #[serde(default = "default_imap_auth")]
    pub auth: ImapAuth,
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_inbox")]
    pub mailbox: String,
    #[serde(default = "default_processed")]
    pub processed_mailbox: String,
    #[serde(default = "default_quarantine")]
    pub quarantine_mailbox: String,
    /// Polling interval when the server has no IDLE, and the IDLE safety net.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
    /// IDLE is re-issued after this many seconds (RFC 2177 asks for less than 29 minutes).
    #[serde(default = "default_idle_seconds")]
    pub idle_seconds: u64,
}

fn default_imap_port() -> u16 {
    993
}
fn default_implicit() -> TlsMode {
    TlsMode::Implicit
}
fn default_imap_auth() -> ImapAuth {
    ImapAuth::Plain
}
fn default_inbox() -> String {
    "INBOX".into()
}
fn default_processed() -> String {
    "Traités".into()
}
fn default_quarantine() -> String {
    "Quarantaine".into()
}
fn default_poll_seconds() -> u64 {
    60
}
fn default_idle_seconds() -> u64 {
    25 * 60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_starttls")]
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_starttls() -> TlsMode {
    TlsMode::Starttls
}
fn default_smtp_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptOutgoing {
    Always,
    WhenPossible,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Cipher {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmimeSettings {
    /// Gateway certificate (PEM, may hold the chain). Alternative: `pkcs12`.
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub pkcs12_password_file: Option<PathBuf>,
    /// Older gateway identities still accepted for decryption during a renewal.
    #[serde(default)]
    pub previous: Vec<KeyPairSettings>,
    pub trust_anchors: PathBuf,
    pub crl_dir: Option<PathBuf>,
    #[serde(default)]
    pub require_crl: bool,
    pub recipients_dir: Option<PathBuf>,
    #[serde(default = "yes")]
    pub require_encryption: bool,
    #[serde(default = "default_encrypt_outgoing")]
    pub encrypt_outgoing: EncryptOutgoing,
    #[serde(default = "default_cipher")]
    pub cipher: Cipher,
    /// Signer and recipient RSA keys shorter than this are refused (`weak_key`); EC keys
    /// need 256 bits.
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairSettings {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub pkcs12_password_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_encrypt_outgoing() -> EncryptOutgoing {
    EncryptOutgoing::Always
}
fn default_cipher() -> Cipher {
    Cipher::Aes256Gcm
}
fn default_min_rsa_bits() -> u32 {
    2048
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// How long a message is retried before it is reported as failed (Postfix: 5 days).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_hours: u64,
    #[serde(default = "default_min_backoff")]
    pub min_backoff_seconds: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: u64,
    #[serde(default = "default_outbox_poll")]
    pub poll_seconds: u64,
    /// Messages sent at once (each worker claims its own rows).
    #[serde(default = "default_outbox_workers")]
    pub workers: u32,
}

fn default_outbox_workers() -> u32 {
    2
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            workers: default_outbox_workers(),
            max_lifetime_hours: default_max_lifetime(),
            min_backoff_seconds: default_min_backoff(),
            max_backoff_seconds: default_max_backoff(),
            poll_seconds: default_outbox_poll(),
        }
    }
}

fn default_max_lifetime() -> u64 {
    5 * 24
}
fn default_min_backoff() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    4000
}
fn default_outbox_poll() -> u64 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Larger incoming messages are quarantined unread (`oversized`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

fn default_max_message_bytes() -> u64 {
    25 * 1024 * 1024
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `teleavis=debug`.
    pub level: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySettings {
    pub id: String,
    pub name: String,
    pub group_address: EmailAddress,
    #[serde(default)]
    pub aliases: Vec<EmailAddress>,
    #[serde(default)]
    pub experts: Vec<EmailAddress>,
    #[serde(default)]
    pub response_time: String,
    /// Phone number for urgent cases, given in the acknowledgement.
    pub phone: Option<String>,
    /// Hours within which an expert should answer (the desk's deadline); fractions allowed
    /// (`0.5`: 30 minutes). The reminder goes at the deadline, the escalation at twice it.
    #[serde(default = "default_deadline_hours")]
    pub deadline_hours: f64,
    /// The urgent line's deadline, when the category has one.
    pub urgent_deadline_minutes: Option<u32>,
    /// Where a thread still unanswered at twice its deadline is escalated (default
    /// `gateway.admin_address`).
    pub escalation_address: Option<EmailAddress>,
    #[serde(default)]
    pub fields: Vec<FieldSettings>,
}

/// A category's own form field as configured; the `form` module compiles it into its template.
pub use crate::form::FieldSettings;

fn default_deadline_hours() -> f64 {
    48.0
}

/// Where a configuration problem is: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl Settings {
    /// Reads the file and the environment overrides; checks types only (see `validate`).
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let one = |key: &str, message: String| ConfigError {
            problems: vec![Problem {
                file: path.to_path_buf(),
                key: key.into(),
                message,
            }],
        };
        if !path.exists() {
            return Err(one("-", "file not found".into()));
        }
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("TELEAVIS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| one("-", e.to_string()))?;
        built
            .try_deserialize()
            .map_err(|e| one(&error_key(&e), e.to_string()))
    }

    pub fn category(&self, id: &str) -> Option<&CategorySettings> {
        self.categories
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
    }
}

fn error_key(e: &config::ConfigError) -> String {
    match e {
        config::ConfigError::Type { key: Some(k), .. } => k.clone(),
        config::ConfigError::At { key: Some(k), .. } => k.clone(),
        config::ConfigError::NotFound(k) => k.clone(),
        _ => "-".into(),
    }
}

/// Reads a secret file, trailing newline removed.
pub fn read_secret(path: &Path) -> std::io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Every problem of a configuration file, found at once: first the raw values (types, enums,
/// ports, inline secrets), then the typed settings (files, permissions, consistency).
pub fn load_and_validate(path: &Path) -> Result<Settings, ConfigError> {
    let (mut problems, cleaned) = raw_problems(path);
    if !problems.is_empty() {
        // The keys at fault are dropped (their defaults apply) so that the file-level checks
        // still run: every problem is reported in one go.
        if let Some(table) = cleaned
            && let Ok(settings) = toml::Value::Table(table).try_into::<Settings>()
        {
            problems.extend(settings.problems(path));
        }
        return Err(ConfigError { problems });
    }
    let settings = Settings::load(path)?;
    problems.extend(settings.problems(path));
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError { problems })
    }
}

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
fn raw_problems(path: &Path) -> (Vec<Problem>, Option<toml::Table>) {
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
