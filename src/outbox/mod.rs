//! The send queue worker: claim a due row, sign and encrypt it for its recipients, send it over
//! SMTP, and record the outcome: sent, retried with exponential backoff, held for a missing
//! certificate, or failed after its lifetime (reported to the admin). Rows are never deleted.
//!
//! A worker sleeps until there is work ([`Wake`], `wake.rs`), until the next retry falls due
//! (`Store::next_due_after`), or at most `outbox.poll_seconds` (the safety net); it keeps its
//! SMTP connection between messages (`mail/smtp_session.rs`).

mod direct;
mod wake;

pub use direct::alert_admin_directly;
pub use wake::{Wake, hold_claims, listen};

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
use crate::mail::smtp_session::SmtpSession;
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
    /// Given up in flight because this process's claim locks were lost (PostgreSQL): another
    /// instance may be sending the row by now, so nothing is recorded.
    Abandoned,
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
        extra_headers: vec![],
        report: None,
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

/// One row handled, and what its claim saw of the rest of the queue (`store::Claimed`).
struct Done {
    outcome: Outcome,
    more_due: bool,
    next_due: Option<DateTime<Utc>>,
}

pub struct Worker {
    settings: Arc<Settings>,
    store: Store,
    smime: Arc<SmimeEngine>,
    smtp: tokio::sync::Mutex<SmtpSession>,
    name: String,
    /// Whether this process's claims are alive (always true on SQLite; see `wake::hold_claims`).
    live: watch::Receiver<bool>,
}

impl Worker {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        smime: Arc<SmimeEngine>,
        index: u32,
        live: watch::Receiver<bool>,
    ) -> anyhow::Result<Worker> {
        let smtp = SmtpSession::new(SmtpSender::new(&settings.smtp)?);
        Ok(Worker {
            settings,
            store,
            smime,
            smtp: tokio::sync::Mutex::new(smtp),
            name: worker_name(index),
            live,
        })
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>, mut wake: watch::Receiver<u64>) {
        let poll = Duration::from_secs(self.settings.outbox.poll_seconds.max(1));
        let mut live = self.live.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            // Marks every wake-up so far as seen: one arriving during the drain is kept.
            wake.borrow_and_update();
            live.borrow_and_update();
            // Drain everything due, then wait. A send tells whether more was due and when the
            // next row falls due, so that the common case asks the database nothing more.
            let mut known_next = None;
            loop {
                match self.step(Utc::now()).await {
                    Ok(Some(done)) if !*stop.borrow() => {
                        if done.outcome == Outcome::Sent && !done.more_due {
                            known_next = Some(done.next_due);
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "outbox: database error");
                        break;
                    }
                }
            }
            let next = match known_next {
                Some(next) => Ok(next),
                None => self.store.next_due_after(Utc::now()).await,
            };
            let wait = match next {
                // A millisecond late, so the row is due by the store's clock too.
                Ok(Some(at)) => (at - Utc::now())
                    .to_std()
                    .map_or(Duration::ZERO, |d| d + Duration::from_millis(1))
                    .min(poll),
                _ => poll,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changed(&mut wake) => {}
                // The claim locks taken (start) or retaken (after a lost session).
                _ = changed(&mut live) => {}
                _ = stop.changed() => break,
            }
        }
        self.smtp.lock().await.close().await;
    }

    /// This worker's name, as `claimed_by` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claims and handles one due row, with what its claim saw of the rest of the queue;
    /// `None` when nothing is due.
    async fn step(&self, now: DateTime<Utc>) -> anyhow::Result<Option<Done>> {
        // A whole SMTP session ends within 3 × timeout (mail/smtp.rs); past this lease a row
        // claimed by a worker that died is taken over by another.
        let lease = Duration::from_secs(self.settings.smtp.timeout_seconds * 3 + 15);
        if !*self.live.borrow() {
            // Without its liveness locks a claim would look dead to other instances at once.
            return Ok(None);
        }
        let Some(claimed) = self.store.claim(now, &self.name, lease).await? else {
            return Ok(None);
        };
        let (more_due, next_due, mut row) = (claimed.more_due, claimed.next_due, claimed.row);
        // The cleartext is not kept beside its signed and encrypted form while it is sent.
        let raw = std::mem::take(&mut row.raw);
        let outcome = self.deliver(&row, raw, now).await;
        if outcome == Outcome::Abandoned {
            warn!(outbox_id = row.id, "send given up: claim locks lost");
            return Ok(None);
        }
        // Stamped when the server answered, not when the row was claimed.
        self.record(&row, &outcome, Utc::now()).await?;
        Ok(Some(Done {
            outcome,
            more_due,
            next_due,
        }))
    }

    async fn deliver(&self, row: &OutboxRow, raw: Vec<u8>, now: DateTime<Utc>) -> Outcome {
        let mut policy = self.settings.smime.encrypt_outgoing;
        // An MDN is encrypted when the sender's certificate is known (and usable), never held
        // without it: it says nothing about the patient, and a held receipt is no receipt.
        let receipt = row.kind == OutboxKind::Mdn;
        if receipt && policy == EncryptOutgoing::Always {
            policy = EncryptOutgoing::WhenPossible;
        }
        let mut certs = Vec::new();
        let mut missing = Vec::new();
        // Recipients whose only certificates have weak keys (issue 7): never encrypted to, and
        // not sent in the clear either, whatever the policy but `never`: held, with the reason.
        let mut refused = Vec::new();
        for r in &row.recipients {
            match self.certificate_for(r).await {
                Ok(Some(c)) => certs.push(c),
                Ok(None) => missing.push(r.clone()),
                Err(_) if receipt => missing.push(r.clone()),
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
        let protected = match self.smime.protect(raw, &certs, encrypt) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot sign/encrypt: {e}"),
                };
            }
        };
        let mut smtp = self.smtp.lock().await;
        let mut live = self.live.clone();
        let sent = tokio::select! {
            r = smtp.send_raw(&row.envelope_from, &row.recipients, &protected) => r,
            // The claim died with our database session: another instance may take the row now,
            // so stop before (most likely) the end of DATA rather than send it at the same time.
            _ = lost(&mut live) => return Outcome::Abandoned,
        };
        match sent {
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
            Ok(Some((der, _))) => self.smime.certificate_from_der(&der),
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
                // One statement: no transaction around it (three round trips to SQLite's
                // thread instead of one, for every message sent).
                let mut c = self.store.pool().acquire().await?;
                self.store.mark_sent(&mut c, row.id, now).await?;
                crate::metrics::outbox_sent(row.kind.as_str());
                info!(outbox_id = row.id, kind = %row.kind, thread = ?row.thread_id, "sent");
            }
            Outcome::Retry {
                next_attempt,
                error: last_error,
            } => {
                let mut c = self.store.pool().acquire().await?;
                self.store
                    .mark_retry(&mut c, row.id, *next_attempt, last_error)
                    .await?;
            }
            Outcome::Held { reason } => {
                error!(outbox_id = row.id, %reason, "message held");
                let mut tx = self.store.begin().await?;
                self.store.mark_held(&mut tx, row.id, reason).await?;
                self.alert_admin(&mut tx, row, "retenu", reason, now)
                    .await?;
                tx.commit().await?;
            }
            Outcome::Abandoned => {}
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

/// The next change of a watched value; never, once its sender is gone.
async fn changed<T>(rx: &mut watch::Receiver<T>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the claim locks are lost; never, while they hold or once their task is gone
/// with them held (SQLite: always live).
async fn lost(live: &mut watch::Receiver<bool>) {
    if live.wait_for(|l| !*l).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The name a worker claims rows under: host, process id and index, unique among live workers.
pub fn worker_name(index: u32) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}:{index}", host.trim(), std::process::id())
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
