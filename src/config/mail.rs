//! `[database]`, `[gateway]`, `[imap]` and `[smtp]`: the store and the mailbox connections.

use std::path::PathBuf;

use serde::Deserialize;

use crate::address::EmailAddress;

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
