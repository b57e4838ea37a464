//! The send queue worker: claim a due row, sign and encrypt it for its recipients, send it over
//! SMTP, and record the outcome: sent, retried with exponential backoff, held for a missing
//! certificate, or failed after its lifetime (reported to the admin). Rows are never deleted.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openssl::x509::X509;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::address::EmailAddress;
use crate::config::{EncryptOutgoing, Settings};
use crate::mail::compose::{self, Outgoing};
use crate::mail::smtp::{SendError, SmtpSender};
use crate::smime::SmimeEngine;
use crate::store::{OutboxKind, OutboxRow, Store, Tx};

/// What happened to one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Retry {
        next_attempt: DateTime<Utc>,
        error: String,
    },
    Held {
        reason: String,
    },
    Failed {
        reason: String,
    },
}

/// Queues a message in the caller's transaction; its Message-ID is derived from the row, so a
/// resend after a crash repeats the same id.
pub async fn enqueue(
    store: &Store,
    tx: &mut Tx,
    settings: &Settings,
    kind: OutboxKind,
    message: &Outgoing,
    now: DateTime<Utc>,
) -> anyhow::Result<(i64, String)> {
    let recipients: Vec<String> = message.to.iter().map(|a| a.to_string()).collect();
    let domain = settings.gateway.address.domain().to_string();
    let built = store
        .enqueue(
            tx,
            &crate::store::NewOutgoing {
                thread_id: message.thread.clone(),
                kind,
                envelope_from: settings.gateway.address.to_string(),
                recipients,
            },
            &domain,
            now,
            |message_id| compose::build(message, message_id, now),
        )
        .await?;
    Ok((built.id, built.message_id))
}

/// A message from the gateway, automatic (RFC 3834), with the thread headers (token
/// `Reply-To`, `X-Teleavis-Thread`) when it is about one.
pub fn gateway_message(
    settings: &Settings,
    to: Vec<EmailAddress>,
    subject: String,
    text: String,
    thread: Option<&str>,
) -> Outgoing {
    let g = &settings.gateway;
    Outgoing {
        from_name: g.display_name.clone(),
        from: g.address.clone(),
        to,
        reply_to: thread.map(|t| g.address.with_tag(&t.to_lowercase())),
        subject,
        thread: thread.map(str::to_string),
        in_reply_to: None,
        references: vec![],
        automatic: true,
        text,
        attachments: vec![],
    }
}

/// Queues the one alert to the administrator (`[teleavis] <what>`): quarantine, bounce, held
/// or failed mail. `text` holds ids and reasons only, never a body.
pub async fn alert_admin(
    store: &Store,
    tx: &mut Tx,
    settings: &Settings,
    what: &str,
    text: String,
    thread: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let to = vec![settings.gateway.admin_address.clone()];
    let alert = gateway_message(settings, to, format!("[teleavis] {what}"), text, thread);
    enqueue(store, tx, settings, OutboxKind::AdminAlert, &alert, now).await?;
    Ok(())
}

pub struct Worker {
    settings: Arc<Settings>,
    store: Store,
    smime: Arc<SmimeEngine>,
    smtp: SmtpSender,
    name: String,
}

impl Worker {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        smime: Arc<SmimeEngine>,
        index: u32,
    ) -> anyhow::Result<Worker> {
        let smtp = SmtpSender::new(&settings.smtp)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name = format!("{}:{}:{index}", host.trim(), std::process::id());
        Ok(Worker {
            settings,
            store,
            smime,
            smtp,
            name,
        })
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_secs(self.settings.outbox.poll_seconds);
        loop {
            if *stop.borrow() {
                return;
            }
            // Drain everything due, then wait.
            loop {
                match self.run_once(Utc::now()).await {
                    Ok(Some(_)) if !*stop.borrow() => continue,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "outbox: database error");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Claims and handles one due row; `None` when nothing is due.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<Option<(i64, Outcome)>> {
        // A whole SMTP session ends within 3 × timeout (mail/smtp.rs); past this lease a row
        // claimed by a worker that died is taken over by another.
        let lease = Duration::from_secs(self.settings.smtp.timeout_seconds * 3 + 15);
        let Some(row) = self.store.claim_due(now, &self.name, lease).await? else {
            return Ok(None);
        };
        let outcome = self.deliver(&row, now).await;
        // Stamped when the server answered, not when the row was claimed.
        self.record(&row, &outcome, Utc::now()).await?;
        Ok(Some((row.id, outcome)))
    }

    async fn deliver(&self, row: &OutboxRow, now: DateTime<Utc>) -> Outcome {
        let policy = self.settings.smime.encrypt_outgoing;
        let mut certs = Vec::new();
        let mut missing = Vec::new();
        // Recipients whose only certificates have weak keys (issue 7): never encrypted to, and
        // not sent in the clear either, whatever the policy but `never`: held, with the reason.
        let mut refused = Vec::new();
        for r in &row.recipients {
            match self.certificate_for(r).await {
                Ok(Some(c)) => certs.push(c),
                Ok(None) => missing.push(r.clone()),
                Err(why) => refused.push(why),
            }
        }
        if policy != EncryptOutgoing::Never && !refused.is_empty() {
            return Outcome::Held {
                reason: refused.join("; "),
            };
        }
        let encrypt = match policy {
            EncryptOutgoing::Never => false,
            EncryptOutgoing::WhenPossible => missing.is_empty(),
            EncryptOutgoing::Always if missing.is_empty() => true,
            EncryptOutgoing::Always => {
                return Outcome::Held {
                    reason: format!(
                        "no certificate known for {} (encrypt_outgoing = always)",
                        missing.join(", ")
                    ),
                };
            }
        };
        let protected = match self.smime.protect(&row.raw, &certs, encrypt) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot sign/encrypt: {e}"),
                };
            }
        };
        match self
            .smtp
            .send_raw(&row.envelope_from, &row.recipients, &protected)
            .await
        {
            Ok(()) => Outcome::Sent,
            Err(SendError::Permanent(e)) => Outcome::Failed { reason: e },
            Err(SendError::Temporary(e)) => {
                let lifetime =
                    chrono::Duration::hours(self.settings.outbox.max_lifetime_hours as i64);
                if now - row.created_at >= lifetime {
                    Outcome::Failed {
                        reason: format!("still failing after {}: {e}", humanize(lifetime)),
                    }
                } else {
                    let next_attempt = now + backoff(&self.settings, row.attempts);
                    warn!(outbox_id = row.id, attempts = row.attempts + 1, error = %e, %next_attempt, "send failed, will retry");
                    Outcome::Retry {
                        next_attempt,
                        error: e,
                    }
                }
            }
        }
    }

    /// The certificate to encrypt to; `Err` names a refused (weak) one.
    async fn certificate_for(&self, recipient: &str) -> Result<Option<X509>, String> {
        let Ok(addr) = EmailAddress::parse(recipient) else {
            return Ok(None);
        };
        let learned = match self.store.recipient_certificate(&addr).await {
            Ok(Some((der, _))) => X509::from_der(&der).ok(),
            _ => None,
        };
        self.smime.recipient_certificate(&addr, learned, Utc::now())
    }

    async fn record(
        &self,
        row: &OutboxRow,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        match outcome {
            Outcome::Sent => {
                let mut c = self.store.begin().await?;
                self.store.mark_sent(&mut c, row.id, now).await?;
                c.commit().await?;
                info!(outbox_id = row.id, kind = %row.kind, thread = ?row.thread_id, "sent");
            }
            Outcome::Retry {
                next_attempt,
                error: last_error,
            } => {
                let mut c = self.store.begin().await?;
                self.store
                    .mark_retry(&mut c, row.id, *next_attempt, last_error)
                    .await?;
                c.commit().await?;
            }
            Outcome::Held { reason } => {
                error!(outbox_id = row.id, %reason, "message held");
                let mut tx = self.store.begin().await?;
                self.store.mark_held(&mut tx, row.id, reason).await?;
                self.alert_admin(&mut tx, row, "retenu", reason, now)
                    .await?;
                tx.commit().await?;
            }
            Outcome::Failed { reason } => {
                error!(outbox_id = row.id, %reason, "message failed");
                let mut tx = self.store.begin().await?;
                self.store.mark_failed(&mut tx, row.id, now, reason).await?;
                self.alert_admin(&mut tx, row, "en échec", reason, now)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Tells the admin, except about the admin's own alerts (no loop).
    async fn alert_admin(
        &self,
        tx: &mut Tx,
        row: &OutboxRow,
        what: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if row.kind == OutboxKind::AdminAlert {
            return Ok(());
        }
        let text = format!(
            "Un message de la passerelle est {what}.\n\n\
             Message-ID : {}\nType : {}\nFil : {}\nDestinataires : {}\nCréé le : {}\nTentatives : {}\nMotif : {reason}\n\n\
             Le message reste dans la file d'envoi (table outbox, id {}).\n",
            row.message_id,
            row.kind,
            row.thread_id.as_deref().unwrap_or("-"),
            row.recipients.join(", "),
            row.created_at.to_rfc3339(),
            row.attempts,
            row.id,
        );
        let what = format!("Message {what}");
        let thread = row.thread_id.as_deref();
        alert_admin(&self.store, tx, &self.settings, &what, text, thread, now).await
    }
}

/// Exponential backoff like Postfix's queue: min × 2^attempts, capped at max.
pub fn backoff(settings: &Settings, attempts: i64) -> chrono::Duration {
    let o = &settings.outbox;
    let factor = 1u64 << attempts.clamp(0, 20);
    let secs = o
        .min_backoff_seconds
        .saturating_mul(factor)
        .min(o.max_backoff_seconds);
    chrono::Duration::seconds(secs as i64)
}

fn humanize(d: chrono::Duration) -> String {
    if d.num_hours() >= 48 {
        format!("{} jours", d.num_days())
    } else {
        format!("{} h", d.num_hours())
    }
}
