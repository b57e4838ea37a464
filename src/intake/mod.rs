//! The intake pipeline over one incoming message, read top to bottom:
//! store raw → dedupe → size → outer headers → loops and bounces → S/MIME unwrap and sender
//! authentication → learn the signer's certificate → the téléexpertise workflow
//! (`workflow.rs`: classify, parse the form, apply to the thread, enqueue outgoing mail).
//! Everything one message causes is committed in ONE transaction, before the caller moves the
//! message out of the inbox.

pub mod bounce;
pub mod envelope;
pub mod notices;
pub mod reason;
pub mod workflow;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use envelope::Envelope;
pub use reason::Reason;

use crate::config::Settings;
use crate::mail::compose::Outgoing;
use crate::smime::SmimeEngine;
use crate::store::{InboundOutcome, NewInbound, Store, Tx};

/// One message as fetched from the mailbox.
#[derive(Clone)]
pub struct Fetched {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// Where a message went, once committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub inbound_id: i64,
    /// The IMAP folder to move the message to.
    pub destination: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed {
        thread: Option<String>,
    },
    Quarantined {
        reason: Reason,
    },
    /// Already handled (same bytes or same Message-ID): nothing happens again.
    Duplicate {
        of: i64,
    },
}

/// What the stages decide for a message.
pub enum Decision {
    Processed { thread: Option<String> },
    Quarantined { reason: Reason, detail: String },
}

pub struct Intake {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Store,
    pub(crate) smime: Arc<SmimeEngine>,
    pub(crate) tz: chrono_tz::Tz,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Intake {
    pub fn new(settings: Arc<Settings>, store: Store, smime: Arc<SmimeEngine>) -> Intake {
        let tz = settings
            .gateway
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Europe::Paris);
        Intake {
            settings,
            store,
            smime,
            tz,
        }
    }

    /// Handles one fetched message. An `Err` means nothing was committed (the database is
    /// unreachable, say): the message stays in the inbox and is tried again later.
    pub async fn handle(&self, f: Fetched) -> anyhow::Result<Handled> {
        let now = Utc::now();
        let sha = sha256_hex(&f.raw);
        if let Some(prev) = self.store.find_inbound_by_sha256(&sha).await? {
            // Committed before a crash or a lost connection, not yet moved: just move it.
            info!(inbound_id = prev.id, "already stored, moving it");
            let destination = prev
                .destination
                .clone()
                .unwrap_or_else(|| self.processed_folder());
            return Ok(Handled {
                inbound_id: prev.id,
                destination,
                outcome: Outcome::Duplicate { of: prev.id },
            });
        }
        let envelope = Envelope::parse(&f.raw);
        let mut tx = self.store.begin().await?;
        let inbound_id = self
            .store
            .insert_inbound(&mut tx, &new_inbound(&f, envelope.as_ref(), &sha, now))
            .await?;

        // Same Message-ID, other bytes: the same mail delivered twice (two recipients, a resend).
        if let Some(mid) = envelope.as_ref().and_then(|e| e.message_id.as_deref())
            && let Some(prev) = self
                .store
                .find_inbound_by_message_id(mid)
                .await?
                .into_iter()
                // Only a message that was handled counts: a forged copy sent first and
                // quarantined must not silence the genuine one.
                .find(|p| p.id != inbound_id && p.outcome == "processed")
        {
            let destination = self.processed_folder();
            let detail = format!("same Message-ID as inbound {}", prev.id);
            self.store
                .set_inbound_outcome(
                    &mut tx,
                    inbound_id,
                    &InboundOutcome {
                        outcome: "duplicate",
                        reason: None,
                        detail: Some(&detail),
                        thread_id: prev.thread_id.as_deref(),
                        destination: Some(&destination),
                    },
                )
                .await?;
            self.store
                .append_audit(
                    &mut tx,
                    "intake",
                    "inbound.duplicate",
                    &format!("inbound:{inbound_id}"),
                    &serde_json::json!({"of": prev.id}),
                    now,
                )
                .await?;
            tx.commit().await?;
            info!(inbound_id, of = prev.id, "duplicate Message-ID");
            return Ok(Handled {
                inbound_id,
                destination,
                outcome: Outcome::Duplicate { of: prev.id },
            });
        }

        let decision = match self
            .process(&mut tx, inbound_id, &f.raw, envelope.as_ref(), now)
            .await
        {
            Ok(d) => d,
            Err(e) if is_transient(&e) => return Err(e),
            Err(e) => {
                // Not the database: a bug met this message. It must not block the mailbox.
                tx.rollback().await?;
                return self.quarantine_failure(&f, &format!("{e:#}")).await;
            }
        };
        let handled = self
            .record(&mut tx, inbound_id, envelope.as_ref(), decision, now)
            .await?;
        tx.commit().await.context("committing the message")?;
        Ok(handled)
    }

    /// Stores a message the pipeline failed on (an error that is not the database's, or a
    /// panic) in quarantine as `processing_error`, with the admin alerted, so it can be
    /// reprocessed once the cause is fixed and the next messages still go through.
    pub async fn quarantine_failure(&self, f: &Fetched, detail: &str) -> anyhow::Result<Handled> {
        let now = Utc::now();
        let sha = sha256_hex(&f.raw);
        let envelope = Envelope::parse(&f.raw);
        let mut tx = self.store.begin().await?;
        let inbound_id = match self.store.find_inbound_by_sha256(&sha).await? {
            Some(prev) => prev.id,
            None => {
                self.store
                    .insert_inbound(&mut tx, &new_inbound(f, envelope.as_ref(), &sha, now))
                    .await?
            }
        };
        let decision = Decision::Quarantined {
            reason: Reason::ProcessingError,
            detail: detail.chars().take(1000).collect(),
        };
        let handled = self
            .record(&mut tx, inbound_id, envelope.as_ref(), decision, now)
            .await?;
        tx.commit().await?;
        Ok(handled)
    }

    /// Runs the stored raw message of a quarantined row through the pipeline again.
    pub async fn reprocess(&self, inbound_id: i64) -> anyhow::Result<Handled> {
        let now = Utc::now();
        let row = self
            .store
            .get_inbound(inbound_id)
            .await?
            .with_context(|| format!("no inbound message {inbound_id}"))?;
        let envelope = Envelope::parse(&row.raw);
        let mut tx = self.store.begin().await?;
        self.store
            .append_audit(
                &mut tx,
                "operator",
                "inbound.reprocess",
                &format!("inbound:{inbound_id}"),
                &serde_json::json!({"previous_reason": row.meta.reason}),
                now,
            )
            .await?;
        let decision = self
            .process(&mut tx, inbound_id, &row.raw, envelope.as_ref(), now)
            .await?;
        let handled = self
            .record(&mut tx, inbound_id, envelope.as_ref(), decision, now)
            .await?;
        tx.commit().await?;
        Ok(handled)
    }

    pub async fn moved(&self, inbound_id: i64) -> anyhow::Result<()> {
        self.store.mark_moved(inbound_id, Utc::now()).await?;
        Ok(())
    }

    fn processed_folder(&self) -> String {
        self.settings.imap.processed_mailbox.clone()
    }

    /// The stages. Returns a decision; `Err` only for database trouble.
    async fn process(
        &self,
        tx: &mut Tx,
        inbound_id: i64,
        raw: &[u8],
        envelope: Option<&Envelope>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        let quarantine =
            |reason: Reason, detail: String| Ok(Decision::Quarantined { reason, detail });
        if raw.len() as u64 > self.settings.limits.max_message_bytes {
            return quarantine(
                Reason::Oversized,
                format!("{} bytes > limits.max_message_bytes", raw.len()),
            );
        }
        let Some(envelope) = envelope else {
            return quarantine(Reason::Malformed, "not an RFC 5322 message".into());
        };
        if let Ok(fault) = std::env::var("TELEAVIS_FAULT")
            && let Some(marker) = fault.strip_prefix("panic-on-subject:")
            && envelope.subject.contains(marker)
        {
            // Fault injection for the reliability tests: a bug meeting one message.
            panic!("TELEAVIS_FAULT: injected panic");
        }
        if is_automatic(envelope) {
            if let Some(b) = bounce::read(raw, self.settings.gateway.address.domain()) {
                self.record_bounce(tx, inbound_id, &b, now).await?;
            }
            return quarantine(
                Reason::Automatic,
                "automatic message (RFC 3834 headers, bounce or list)".into(),
            );
        }
        let Some(from) = envelope.from.clone() else {
            return quarantine(Reason::Malformed, "no usable From address".into());
        };
        if from.base() == self.settings.gateway.address.base() {
            return quarantine(Reason::Loop, "the gateway's own mail came back".into());
        }
        let authenticated = match self.smime.authenticate(raw, now) {
            Ok(a) => a,
            Err(rejection) => {
                let reason = Reason::Smime(rejection.reason);
                if rejection.sender_authenticated {
                    // Safe to answer: the From address proved itself with a valid signature.
                    // Its certificate is learned, so that the answer can be encrypted to it.
                    if let Some(signer) = &rejection.signer {
                        self.store
                            .learn_certificate(
                                tx,
                                &signer.email,
                                &signer.cert_der,
                                signer.not_after,
                                Some(inbound_id),
                                now,
                            )
                            .await?;
                    }
                    let text = notices::rejected(&self.settings, reason, envelope);
                    self.auto_reply(tx, &from, envelope, "Message refusé", text, None, now)
                        .await?;
                }
                return quarantine(reason, rejection.detail);
            }
        };
        let signer = &authenticated.signer;
        self.store
            .learn_certificate(
                tx,
                &signer.email,
                &authenticated.signer.cert_der,
                signer.not_after,
                Some(inbound_id),
                now,
            )
            .await?;
        // Directory (issue 10): the certificate's RPPS against the national directory.
        if let Some(detail) = crate::directory::hooks::check_signer(
            &self.store,
            tx,
            &self.settings.directory,
            signer,
            inbound_id,
            now,
        )
        .await?
        {
            let text = notices::rejected(&self.settings, Reason::DirectoryMismatch, envelope);
            self.auto_reply(tx, &from, envelope, "Message refusé", text, None, now)
                .await?;
            return quarantine(Reason::DirectoryMismatch, detail);
        }
        workflow::apply(self, tx, inbound_id, envelope, &authenticated, now).await
    }

    async fn record(
        &self,
        tx: &mut Tx,
        inbound_id: i64,
        envelope: Option<&Envelope>,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Handled> {
        let from = envelope
            .and_then(|e| e.from.as_ref())
            .map(|a| a.to_string());
        match decision {
            Decision::Processed { thread } => {
                let destination = self.processed_folder();
                self.store
                    .set_inbound_outcome(
                        tx,
                        inbound_id,
                        &InboundOutcome {
                            outcome: "processed",
                            reason: None,
                            detail: None,
                            thread_id: thread.as_deref(),
                            destination: Some(&destination),
                        },
                    )
                    .await?;
                self.store
                    .append_audit(
                        tx,
                        "intake",
                        "inbound.processed",
                        &format!("inbound:{inbound_id}"),
                        &serde_json::json!({"thread": thread, "from": from}),
                        now,
                    )
                    .await?;
                info!(inbound_id, thread = ?thread, "processed");
                Ok(Handled {
                    inbound_id,
                    destination,
                    outcome: Outcome::Processed { thread },
                })
            }
            Decision::Quarantined { reason, detail } => {
                let destination = self.settings.imap.quarantine_mailbox.clone();
                self.store
                    .set_inbound_outcome(
                        tx,
                        inbound_id,
                        &InboundOutcome {
                            outcome: "quarantined",
                            reason: Some(reason.code()),
                            detail: Some(&detail),
                            thread_id: None,
                            destination: Some(&destination),
                        },
                    )
                    .await?;
                self.store
                    .append_audit(
                        tx,
                        "intake",
                        "inbound.quarantined",
                        &format!("inbound:{inbound_id}"),
                        &serde_json::json!({"reason": reason.code(), "from": from}),
                        now,
                    )
                    .await?;
                warn!(inbound_id, reason = reason.code(), %detail, "quarantined");
                if reason != Reason::Automatic && reason != Reason::Loop {
                    let text = notices::admin_quarantine(inbound_id, reason, &detail, envelope);
                    let alert = self.gateway_message(
                        vec![self.settings.gateway.admin_address.clone()],
                        format!("[teleavis] Quarantaine : {}", reason.code()),
                        text,
                        None,
                    );
                    crate::outbox::enqueue(
                        &self.store,
                        tx,
                        &self.settings,
                        "admin_alert",
                        &alert,
                        now,
                    )
                    .await?;
                }
                Ok(Handled {
                    inbound_id,
                    destination,
                    outcome: Outcome::Quarantined { reason },
                })
            }
        }
    }

    /// A bounce of the gateway's own mail: the outbox rows it names are failed after all, and
    /// the admin is told (the bounce itself goes to quarantine as `automatic`).
    async fn record_bounce(
        &self,
        tx: &mut Tx,
        inbound_id: i64,
        b: &bounce::Bounce,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        for mid in &b.message_ids {
            let Some(row) = self.store.find_outbox_by_message_id(mid).await? else {
                continue;
            };
            let reason = format!("bounced (inbound {inbound_id}): {}", b.diagnostic);
            if !self.store.mark_bounced(tx, row.id, now, &reason).await?
                || row.kind == "admin_alert"
            {
                continue;
            }
            let text = format!(
                "Un message de la passerelle est en échec : il a été refusé après son envoi.\n\n\
                 Message-ID : {}\nType : {}\nFil : {}\nDestinataires : {}\nMotif : {}\n\n\
                 L'avis de non-remise est en quarantaine : teleavis quarantine show {inbound_id}\n",
                row.message_id,
                row.kind,
                row.thread_id.as_deref().unwrap_or("-"),
                row.recipients.join(", "),
                b.diagnostic,
            );
            let alert = self.gateway_message(
                vec![self.settings.gateway.admin_address.clone()],
                "[teleavis] Message en échec".into(),
                text,
                row.thread_id.as_deref(),
            );
            crate::outbox::enqueue(&self.store, tx, &self.settings, "admin_alert", &alert, now)
                .await?;
        }
        Ok(())
    }

    /// A message from the gateway, automatic (RFC 3834), with the thread headers when it has one.
    pub(crate) fn gateway_message(
        &self,
        to: Vec<crate::address::EmailAddress>,
        subject: String,
        text: String,
        thread: Option<&str>,
    ) -> Outgoing {
        let g = &self.settings.gateway;
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

    /// An automatic reply to a sender, within the per-sender rate limit (RFC 3834). Returns
    /// whether it was queued.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn auto_reply(
        &self,
        tx: &mut Tx,
        to: &crate::address::EmailAddress,
        envelope: &Envelope,
        word: &str,
        text: String,
        thread: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let since = now - chrono::Duration::hours(1);
        let sent = self.store.count_auto_replies_since(to, since).await?;
        if sent >= i64::from(self.settings.gateway.auto_reply_per_hour) {
            warn!(to = %to, "automatic reply suppressed by the rate limit");
            return Ok(false);
        }
        let subject = match thread {
            Some(t) => format!("[{t}] {word}"),
            None => format!("Téléexpertise — {word}"),
        };
        let mut m = self.gateway_message(vec![to.clone()], subject, text, thread);
        if let Some(mid) = &envelope.message_id {
            m.in_reply_to = Some(mid.clone());
            m.references = vec![mid.clone()];
        }
        self.store.record_auto_reply(tx, to, now).await?;
        crate::outbox::enqueue(&self.store, tx, &self.settings, "notice", &m, now).await?;
        Ok(true)
    }

    /// Periodic work: auto-close idle threads, retry held messages whose certificates may now
    /// be known.
    pub async fn housekeeping(&self) -> anyhow::Result<()> {
        let released = self.store.release_held().await?;
        if released > 0 {
            info!(released, "held messages queued again");
        }
        workflow::auto_close(self, Utc::now()).await
    }
}

fn new_inbound(
    f: &Fetched,
    envelope: Option<&Envelope>,
    sha: &str,
    now: DateTime<Utc>,
) -> NewInbound {
    NewInbound {
        received_at: now,
        mailbox: f.mailbox.clone(),
        uidvalidity: f.uidvalidity,
        uid: f.uid,
        message_id: envelope.and_then(|e| e.message_id.clone()),
        sha256: sha.to_string(),
        size: f.raw.len() as u64,
        from_addr: envelope
            .and_then(|e| e.from.as_ref())
            .map(|a| a.to_string()),
        raw: f.raw.clone(),
    }
}

/// Database trouble that a later try may not meet (connection lost, busy, deadlock).
fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::store::StoreError>()
            .is_some_and(|s| s.is_transient())
            || matches!(
                c.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            )
    })
}

/// RFC 3834 and bounce detection on the outer headers.
pub fn is_automatic(e: &Envelope) -> bool {
    crate::thread::is_automatic(&crate::thread::AutoHeaders {
        auto_submitted: e.auto_submitted.clone(),
        precedence: e.precedence.clone(),
        return_path: e.return_path.clone(),
        from: e.from.clone(),
        list_id: e.list_id,
        x_autoreply: e.x_autoreply,
    })
}
