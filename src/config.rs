//! Typed settings: the TOML file plus `TELEAVIS__SECTION__KEY` overrides, and their validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod category;
mod check;
mod directory;
mod mail;
mod metrics;
mod raw;
mod record;
mod runtime;
mod smime;

use raw::raw_problems;

pub use category::{CategorySettings, FieldSettings};
pub use check::private_mode;
pub use directory::DirectorySettings;
pub use mail::{DatabaseSettings, GatewaySettings, ImapAuth, ImapSettings, SmtpSettings, TlsMode};
pub use metrics::MetricsSettings;
pub use record::{BillingSettings, RecordSettings, TariffSettings};
pub use runtime::{LimitSettings, LogFormat, LogSettings, OutboxSettings};
pub use smime::{Cipher, EncryptOutgoing, KeyPairSettings, SmimeSettings};

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

/// The development configuration (`config/dev.toml.in`) with placeholder values, for unit
/// tests that need a whole `Settings`.
#[cfg(test)]
pub(crate) fn dev_settings() -> Settings {
    let text = include_str!("../config/dev.toml.in")
        .replace("@CIPHER@", "aes-256-gcm")
        .replace("@DATABASE_URL@", "sqlite::memory:")
        .replace("@DIR@", "/nonexistent")
        .replace("@PKI@", "/nonexistent")
        .replace("@IMAPS_PORT@", "993")
        .replace("@SUBMISSION_PORT@", "587");
    toml::from_str(&text).expect("config/dev.toml.in parses")
}
