//! `[outbox]`, `[limits]` and `[log]`: the delivery queue, message size limits and logging.

use serde::Deserialize;

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
