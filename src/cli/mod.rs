//! The administrative commands: check-config, migrate, threads, report, stats, quarantine,
//! audit, purge, status, backup. Each prints for a person (table, text) or a program (JSON, CSV).

mod assets;
mod audit;
mod backup;
mod billing;
mod directory;
mod quarantine;
mod record;
mod roster;
mod stats;
mod stats_html;
mod status;
mod threads;

use std::path::Path;

use anyhow::Context;

pub use assets::generate_assets;
pub use audit::{OPERATOR_READ, audit_list, audit_verify, operator, record_read};
pub use backup::backup;
pub use billing::billing_export;
pub use directory::{directory_import, directory_show};
pub use quarantine::{quarantine_list, quarantine_reprocess, quarantine_show};
pub use roster::{roster_import, roster_show};
pub use stats::stats;
pub use status::{NeedsAttention, StatusLimits, status};
pub use threads::{purge, report, threads_list, threads_show};

use crate::config::Settings;

/// A usage mistake on the command line (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Text,
    Json,
    Csv,
    Pdf,
    /// The compte-rendu as a CDA document, and as the IHE XDM archive around it.
    Cda,
    Xdm,
    Html,
}

impl Format {
    pub fn parse(s: &str) -> anyhow::Result<Format> {
        Ok(match s {
            "table" => Format::Table,
            "text" => Format::Text,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "pdf" => Format::Pdf,
            "cda" => Format::Cda,
            "xdm" => Format::Xdm,
            "html" => Format::Html,
            other => return Err(UsageError(format!("unknown --format {other:?}")).into()),
        })
    }
}

pub(crate) use crate::daemon::open_store;

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    open_store(settings).await?;
    println!("migrations applied");
    Ok(())
}

/// The file was already validated by `main`; here every certificate and key is loaded, and with
/// `--connect` both servers are logged in to.
pub async fn check_config(settings: &Settings, path: &Path, connect: bool) -> anyhow::Result<()> {
    let smime = crate::smime::SmimeEngine::load(&settings.smime)
        .map_err(|e| UsageError(format!("{}: smime: {e}", path.display())))?;
    let cert = smime.gateway_certificate();
    let subject = cert
        .subject_name()
        .entries()
        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "gateway certificate: {subject} (valid until {})",
        cert.not_after()
    );
    crate::mail::tls::client_config(
        settings.imap.ca_file.as_deref(),
        settings
            .imap
            .client_certificate
            .as_deref()
            .zip(settings.imap.client_key.as_deref()),
    )
    .map_err(|e| UsageError(format!("{}: imap: {e}", path.display())))?;
    crate::mail::smtp::SmtpSender::new(&settings.smtp)
        .map_err(|e| UsageError(format!("{}: smtp: {e}", path.display())))?;
    if connect {
        let mut imap = crate::mail::imap::ImapClient::connect(&settings.imap)
            .await
            .context("IMAP login")?;
        let state = imap
            .select(&settings.imap.mailbox)
            .await
            .context("IMAP select")?;
        println!(
            "IMAP: logged in to {}:{}, {} holds {} messages",
            settings.imap.host, settings.imap.port, settings.imap.mailbox, state.exists
        );
        imap.logout().await;
        let smtp = crate::mail::smtp::SmtpSender::new(&settings.smtp)?;
        anyhow::ensure!(
            smtp.test_connection().await.context("SMTP connection")?,
            "SMTP server refused the connection"
        );
        println!(
            "SMTP: connected to {}:{}",
            settings.smtp.host, settings.smtp.port
        );
    }
    println!("{}: configuration OK", path.display());
    Ok(())
}

/// Fixed-width table for a terminal.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for r in rows {
        println!("{}", line(r.clone()));
    }
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
