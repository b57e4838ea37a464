//! The intake pipeline over one incoming message. `Intake::stages` is the list, in order:
//! same Message-ID → size → headers → loops and bounces → sender → authentication →
//! classification → the new request, the thread's transition, or help. Each stage is a
//! function of its own module returning `Stage<_>`: the next stage's input, or the message's
//! `Decision`. Everything one message causes is committed in ONE transaction, before the
//! caller moves the message out of the inbox.

pub mod authenticate;
pub mod autoclose;
pub mod autoreply;
pub mod bounce;
pub mod classify;
pub mod content;
pub mod deadlines;
pub mod effects;
pub mod envelope;
pub mod notices;
// Issue 12 hook: quarantine from RFC822.SIZE, headers only.
mod oversized;
pub mod reason;
pub mod replay;
pub mod reply;
pub mod request;
pub mod screen;
pub mod stage;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{Instrument, info, warn};

pub use content::{Content, read_content};
pub use envelope::Envelope;
pub use reason::Reason;
pub use screen::is_automatic;

use crate::catalogue::Catalogue;
use crate::config::Settings;
use crate::smime::SmimeEngine;
use crate::store::{InboundOutcome, InboundStatus, NewInbound, Store, StoreError, Tx};
use classify::Class;
use stage::{MessageCtx, Stage, Stop};

/// One message as fetched from the mailbox.
#[derive(Clone)]
pub struct Fetched {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub uid: u32,
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("mailbox", &self.mailbox)
            .field("uid", &self.uid)
            .field("size", &self.raw.len())
            .finish_non_exhaustive()
    }
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
#[derive(Debug)]
pub enum Decision {
    Processed {
        thread: Option<String>,
    },
    Quarantined {
        reason: Reason,
        detail: String,
    },
    /// The same mail as inbound `of`, which was handled (in `thread`).
    Duplicate {
        of: i64,
        thread: Option<String>,
        same: SameAs,
    },
}

/// What makes a message a copy of one already handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameAs {
    /// The same Message-ID.
    MessageId,
    /// The same innermost signature: a replay with new outer headers.
    Signature,
}

impl SameAs {
    pub fn code(self) -> &'static str {
        match self {
            SameAs::MessageId => "message_id",
            SameAs::Signature => "signature",
        }
    }
}

pub struct Intake {
    pub(crate) settings: Arc<Settings>,
    pub(crate) store: Store,
    pub(crate) smime: Arc<SmimeEngine>,
    pub(crate) catalogue: Catalogue,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Intake {
    /// `settings` passed `config::load_and_validate`, whose checks include compiling the
    /// same catalogue: a category at fault there is left out here (and logged).
    pub fn new(settings: Arc<Settings>, store: Store, smime: Arc<SmimeEngine>) -> Intake {
        let (catalogue, problems) = Catalogue::compile(&settings);
        for p in problems {
            warn!(key = %p.key, problem = %p.message, "category left out");
        }
        Intake {
            settings,
            store,
            smime,
            catalogue,
        }
    }

    /// Handles one fetched message. An `Err` means nothing was committed (the database is
    /// unreachable, say): the message stays in the inbox and is tried again later.
    pub async fn handle(&self, f: Fetched) -> anyhow::Result<Handled> {
        let now = Utc::now();
        let sha = sha256_hex(&f.raw);
        let envelope = Envelope::parse(&f.raw);
        let mut tx = self.store.begin().await?;
        // The insert is the duplicate check (unique SHA-256): no lookup before it, as nearly
        // every message is new.
        let inserted = self
            .store
            .insert_inbound(&mut tx, &new_inbound(&f, envelope.as_ref(), &sha, now))
            .await;
        let inbound_id = match inserted {
            Ok(id) => id,
            Err(StoreError::DuplicateInbound { .. }) => {
                tx.rollback()
                    .await
                    .context("ending a duplicate's transaction")?;
                return self.already_stored(&sha).await;
            }
            Err(e) => return Err(e.into()),
        };
        let span = message_span(inbound_id);
        let run = async {
            let run = self.stages(&mut tx, inbound_id, &f.raw, envelope.as_ref(), true, now);
            let decision = match run.await {
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
        .instrument(span);
        crate::directory::hooks::remembering(run).await
    }

    /// A message whose bytes were committed before (a crash or a lost connection came before
    /// its move): it is only moved, where its row says.
    async fn already_stored(&self, sha: &str) -> anyhow::Result<Handled> {
        let prev = self
            .store
            .find_inbound_by_sha256(sha)
            .await?
            .context("a duplicate inbound message vanished")?;
        info!(inbound_id = prev.id, "already stored, moving it");
        let destination = prev
            .destination
            .clone()
            .unwrap_or_else(|| self.processed_folder());
        Ok(Handled {
            inbound_id: prev.id,
            destination,
            outcome: Outcome::Duplicate { of: prev.id },
        })
    }

    /// The stages, in order. Returns the decision; `Err` for the database or a bug.
    async fn stages(
        &self,
        tx: &mut Tx,
        inbound_id: i64,
        raw: &[u8],
        envelope: Option<&Envelope>,
        fresh: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        let run = async {
            if fresh {
                screen::same_message_id(self, inbound_id, envelope).await?;
            }
            screen::size(self, raw)?;
            let envelope = screen::headers(envelope)?;
            crate::faults::panic_on_subject(&envelope.subject);
            let mut cx = MessageCtx {
                tx,
                inbound_id,
                envelope,
                now,
            };
            screen::automatic(self, &mut cx, raw).await?;
            let from = screen::sender(self, envelope)?;
            let msg = authenticate::sender(self, &mut cx, raw, &from).await?;
            // From here on the sender is proven: checks of the authenticated message go here.
            replay::check(self, &mut cx, &msg).await?;
            // Directory (issue 10): the signer's RPPS against the national directory.
            authenticate::directory_match(self, &mut cx, &msg).await?;
            let decision = match classify::classify(self, cx.tx, envelope, now, &msg).await? {
                Class::Help => request::help(self, &mut cx, &msg, None).await,
                Class::NoCategory => {
                    let why = "Votre message ne dit pas à quelle spécialité il s'adresse.";
                    request::help(self, &mut cx, &msg, Some(why)).await
                }
                Class::NewRequest { category, previous } => {
                    request::open(self, &mut cx, &msg, category, previous).await
                }
                Class::InThread(it) => reply::apply(self, &mut cx, &msg, *it).await,
                Class::UnknownThread { token } => {
                    let text = notices::unknown_thread(&self.settings, &token);
                    let word = "Référence inconnue";
                    autoreply::auto_reply(self, &mut cx, &msg.signer().email, word, text, None)
                        .await?;
                    stage::quarantine(
                        Reason::UnknownThread,
                        format!("token {token} names no thread"),
                    )
                }
            }?;
            replay::record(self, &mut cx, &msg, &decision).await?;
            Ok(decision)
        };
        let finished: Stage<Decision> = run.await;
        match finished {
            Ok(d) | Err(Stop::Decided(d)) => Ok(d),
            Err(Stop::Failed(e)) => Err(e),
        }
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
            .instrument(message_span(inbound_id))
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
        let run = async {
            let detail = serde_json::json!({"previous_reason": row.meta.reason});
            let subject = format!("inbound:{inbound_id}");
            self.store
                .append_audit(
                    &mut tx,
                    "operator",
                    "inbound.reprocess",
                    &subject,
                    &detail,
                    now,
                )
                .await?;
            let decision = self
                .stages(&mut tx, inbound_id, &row.raw, envelope.as_ref(), false, now)
                .await?;
            let handled = self
                .record(&mut tx, inbound_id, envelope.as_ref(), decision, now)
                .await?;
            tx.commit().await?;
            Ok(handled)
        }
        .instrument(message_span(inbound_id));
        crate::directory::hooks::remembering(run).await
    }

    pub async fn moved(&self, inbound_id: i64) -> anyhow::Result<()> {
        self.store.mark_moved(inbound_id, Utc::now()).await?;
        Ok(())
    }

    fn processed_folder(&self) -> String {
        self.settings.imap.processed_mailbox.clone()
    }

    /// Writes the decision: the inbound row's outcome, its audit entry, the admin's alert.
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
        let subject = format!("inbound:{inbound_id}");
        let destination = match decision {
            Decision::Quarantined { .. } => self.settings.imap.quarantine_mailbox.clone(),
            _ => self.processed_folder(),
        };
        let same;
        let (mut row, action, detail, outcome) = match &decision {
            Decision::Processed { thread } => {
                info!("processed");
                let row = InboundOutcome {
                    thread_id: thread.as_deref(),
                    ..InboundOutcome::new(InboundStatus::Processed)
                };
                let detail = serde_json::json!({"thread": thread, "from": from});
                let thread = thread.clone();
                (
                    row,
                    "inbound.processed",
                    detail,
                    Outcome::Processed { thread },
                )
            }
            Decision::Quarantined { reason, detail } => {
                warn!(reason = reason.code(), %detail, "quarantined");
                let row = InboundOutcome {
                    reason: Some(reason.code()),
                    detail: Some(detail),
                    ..InboundOutcome::new(InboundStatus::Quarantined)
                };
                let audit = serde_json::json!({"reason": reason.code(), "from": from});
                let reason = *reason;
                (
                    row,
                    "inbound.quarantined",
                    audit,
                    Outcome::Quarantined { reason },
                )
            }
            Decision::Duplicate {
                of,
                thread,
                same: by,
            } => {
                same = match by {
                    SameAs::MessageId => format!("same Message-ID as inbound {of}"),
                    SameAs::Signature => format!("same signature as inbound {of} (replayed copy)"),
                };
                let row = InboundOutcome {
                    detail: Some(&same),
                    thread_id: thread.as_deref(),
                    ..InboundOutcome::new(InboundStatus::Duplicate)
                };
                let of = *of;
                (
                    row,
                    "inbound.duplicate",
                    serde_json::json!({"of": of, "by": by.code()}),
                    Outcome::Duplicate { of },
                )
            }
        };
        row.destination = Some(&destination);
        self.store.set_inbound_outcome(tx, inbound_id, &row).await?;
        self.store
            .append_audit(tx, "intake", action, &subject, &detail, now)
            .await?;
        if let Decision::Quarantined { reason, detail } = &decision
            && *reason != Reason::Automatic
            && *reason != Reason::Loop
        {
            let text = notices::admin_quarantine(inbound_id, *reason, detail, envelope);
            let what = format!("Quarantaine : {}", reason.code());
            let s = &self.settings;
            crate::outbox::alert_admin(&self.store, tx, s, &what, text, None, now).await?;
        }
        Ok(Handled {
            inbound_id,
            destination,
            outcome,
        })
    }

    /// Periodic work: auto-close idle threads, retry held messages whose certificates may now
    /// be known.
    pub async fn housekeeping(&self) -> anyhow::Result<()> {
        let released = self.store.release_held().await?;
        if released > 0 {
            info!(released, "held messages queued again");
        }
        autoclose::auto_close(self, Utc::now()).await
    }
}

/// The span every log line about one message carries: its inbound id, then its thread.
fn message_span(inbound_id: i64) -> tracing::Span {
    tracing::info_span!("message", inbound_id, thread = tracing::field::Empty)
}

fn new_inbound<'a>(
    f: &'a Fetched,
    envelope: Option<&Envelope>,
    sha: &str,
    now: DateTime<Utc>,
) -> NewInbound<'a> {
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
        raw: (&f.raw[..]).into(),
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
