//! Typed settings: the TOML file plus `TELEAVIS__SECTION__KEY` overrides, and their validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::address::EmailAddress;

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
    Aes256Gcm,
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
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
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
    #[serde(default)]
    pub fields: Vec<FieldSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSettings {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Allowed values when `kind = "choice"`.
    #[serde(default)]
    pub choices: Vec<String>,
}

fn default_kind() -> String {
    "text".into()
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
