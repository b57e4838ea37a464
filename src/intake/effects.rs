//! The one interpreter of the domain's `Action`s: each action becomes outbox rows (the
//! acknowledgement, the forward, relays, notices, the compte-rendu), each recorded in the
//! thread, in the caller's transaction. The thread's own state was decided before (see
//! `Thread::after`); nothing here decides.

use chrono::{DateTime, Utc};

use super::stage::Message;
use super::{Envelope, Intake, notices};
use crate::catalogue::Category;
use crate::mail::compose::{Attachment, Outgoing};
use crate::outbox;
use crate::store::{AttachmentMeta, Direction, MessageKind, NewThreadMessage, OutboxKind, Tx};
use crate::thread::{self, Action, Notice, Role, Thread, ThreadId};

/// What the actions apply to: the thread after its transition and what caused them.
pub struct Applied<'a> {
    /// The thread as just written (status, category, expert in charge).
    pub thread: &'a Thread,
    /// Its category now.
    pub category: &'a Category,
    /// The category it had before the transition (another one after `#transferer`).
    pub previous_category: &'a Category,
    /// The message behind them; `None` for the daemon's own transitions (auto-close).
    pub cause: Option<Cause<'a>>,
    /// Desk (issue 10): the line stating the deadline of a thread being opened, for its
    /// acknowledgement (`None` for every other transition).
    pub deadline_line: Option<&'a str>,
}

/// An incoming message that caused the actions.
pub struct Cause<'a> {
    pub msg: &'a Message,
    pub envelope: &'a Envelope,
    pub role: Role,
    /// The message's own text (for a command, the text around it).
    pub text: &'a str,
}

impl Cause<'_> {
    /// Relays carry the message's own text and files: nothing to relay when both are empty.
    fn has_text_or_files(&self) -> bool {
        !self.text.trim().is_empty() || !self.msg.content.attachments.is_empty()
    }
}

/// Queues what `actions` call for, in order.
pub async fn run(
    intake: &Intake,
    tx: &mut Tx,
    now: DateTime<Utc>,
    a: &Applied<'_>,
    actions: &[Action],
) -> anyhow::Result<()> {
    let s = &intake.settings;
    let t = a.thread;
    let tid = t.id.to_string();
    let c = a.category;
    let author = a
        .cause
        .as_ref()
        .map(|x| x.msg.author_line())
        .unwrap_or_default();
    let mail = |to, word: &str, text| {
        outbox::gateway_message(
            s,
            vec![to],
            thread::subject(&t.id, &c.name, word),
            text,
            Some(&tid),
        )
    };
    for action in actions {
        let (kind, m) = match (action, &a.cause) {
            (Action::Acknowledge, Some(x)) => {
                let previous = t.previous.as_ref().map(ThreadId::to_string);
                let mut text = notices::ack(s, &t.id, c, previous.as_deref());
                // Desk (issue 10): the deadline (standard or urgent line), stated.
                if let Some(line) = a.deadline_line {
                    text = crate::directory::hooks::insert_after_line(text, "Catégorie : ", line);
                }
                // Directory (issue 10): who the requérant and the experts are.
                let requester = t.requester.as_str();
                let text =
                    crate::directory::hooks::amend_ack(&intake.store, tx, c, requester, text)
                        .await?;
                let mut m = mail(t.requester.clone(), "Accusé de réception", text);
                m.in_reply_to = x.envelope.message_id.clone();
                m.references = x.envelope.message_id.iter().cloned().collect();
                (OutboxKind::Ack, m)
            }
            (Action::Forward, Some(x)) => {
                let text =
                    notices::forward(s, &t.id, c, &t.form, x.msg.signer(), &x.msg.content.text);
                // Directory (issue 10): the requérant's profession, specialty and department.
                let requester = t.requester.as_str();
                let text =
                    crate::directory::hooks::amend_forward(&intake.store, tx, requester, text)
                        .await?;
                let mut m = mail(c.group_address.clone(), "Nouvelle demande", text);
                m.automatic = false;
                m.attachments = x.msg.content.attachments.clone();
                (OutboxKind::Forward, m)
            }
            (Action::RelayToRequester, Some(x)) if x.has_text_or_files() => {
                let text = notices::relay_to_requester(s, &t.id, &author, x.text);
                let mut m = mail(t.requester.clone(), "Réponse", text);
                m.automatic = false;
                m.attachments = x.msg.content.attachments.clone();
                m.in_reply_to = first_request_id(intake, &tid).await?;
                (OutboxKind::Answer, m)
            }
            (Action::RelayToGroup, Some(x)) if x.has_text_or_files() => {
                let word = match x.role {
                    Role::Requester => "Complément du requérant",
                    _ => "Message",
                };
                let text = notices::relay_to_group(s, &t.id, &author, x.text);
                let mut m = mail(c.group_address.clone(), word, text);
                m.automatic = false;
                m.attachments = x.msg.content.attachments.clone();
                (OutboxKind::FollowUp, m)
            }
            (Action::ForwardRequest, _) => (
                OutboxKind::Forward,
                forward_again(intake, t, c, &author, now).await?,
            ),
            (Action::SendReport, _) => {
                send_report(intake, tx, t, c, now).await?;
                continue;
            }
            (Action::NotifyRequester(n), _) => {
                let text = notices::notice(s, &t.id, *n, &author, c);
                (
                    OutboxKind::Notice,
                    mail(t.requester.clone(), notice_word(*n), text),
                )
            }
            (Action::NotifyGroup(n), _) => {
                let text = notices::notice(s, &t.id, *n, &author, c);
                (
                    OutboxKind::Notice,
                    mail(c.group_address.clone(), notice_word(*n), text),
                )
            }
            (Action::NotifyPreviousGroup(n), _) if a.previous_category.id != c.id => {
                let p = a.previous_category;
                let text = notices::notice(s, &t.id, *n, &author, c);
                let subject = thread::subject(&t.id, &p.name, notice_word(*n));
                let to = vec![p.group_address.clone()];
                (
                    OutboxKind::Notice,
                    outbox::gateway_message(s, to, subject, text, Some(&tid)),
                )
            }
            // `Take` and `MoveTo` change the thread itself (`Thread::after`); a relay of an
            // empty message, or an action without the message it needs, sends nothing.
            _ => continue,
        };
        send(intake, tx, &tid, kind, m, now).await?;
    }
    Ok(())
}

fn notice_word(n: Notice) -> &'static str {
    match n {
        Notice::Taken => "Prise en charge",
        Notice::Transferred => "Transfert",
        Notice::Cancelled => "Annulation",
        Notice::AutoClosed => "Clôture automatique",
    }
}

/// Queues a message and records it in the thread.
pub async fn send(
    intake: &Intake,
    tx: &mut Tx,
    tid: &str,
    kind: OutboxKind,
    m: Outgoing,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let (outbox_id, message_id) =
        outbox::enqueue(&intake.store, tx, &intake.settings, kind, &m, now).await?;
    let message = NewThreadMessage {
        thread_id: tid.to_string(),
        direction: Direction::Out,
        kind: kind.message_kind(),
        from_addr: m.from.to_string(),
        to_addrs: m.to.iter().map(|a| a.to_string()).collect(),
        at: now,
        message_id: Some(message_id),
        author_name: None,
        author_rpps: None,
        body_text: None,
        attachments_json: describe(&m.attachments),
        inbound_id: None,
        outbox_id: Some(outbox_id),
    };
    intake.store.add_thread_message(tx, &message).await?;
    Ok(())
}

/// Records the incoming message in its thread, as `kind`, with its own text.
pub async fn record_in(
    intake: &Intake,
    cx: &mut super::stage::MessageCtx<'_>,
    tid: &str,
    kind: MessageKind,
    msg: &Message,
    text: &str,
    attachments: &[Attachment],
) -> anyhow::Result<()> {
    let signer = msg.signer();
    let message = NewThreadMessage {
        thread_id: tid.to_string(),
        direction: Direction::In,
        kind,
        from_addr: signer.email.to_string(),
        to_addrs: cx
            .envelope
            .recipients
            .iter()
            .map(|a| a.to_string())
            .collect(),
        at: cx.now,
        message_id: cx.envelope.message_id.clone(),
        author_name: signer.display_name.clone(),
        author_rpps: signer.rpps.clone(),
        body_text: Some(text.to_string()),
        attachments_json: describe(attachments),
        inbound_id: Some(cx.inbound_id),
        outbox_id: None,
    };
    intake.store.add_thread_message(cx.tx, &message).await?;
    Ok(())
}

fn describe(atts: &[Attachment]) -> String {
    let list: Vec<AttachmentMeta> = atts
        .iter()
        .map(|a| AttachmentMeta::of(&a.name, &a.content_type, &a.bytes[..]))
        .collect();
    AttachmentMeta::to_json(&list)
}

/// The GP's own request Message-ID, so replies thread under it in their client.
async fn first_request_id(intake: &Intake, tid: &str) -> anyhow::Result<Option<String>> {
    Ok(intake
        .store
        .thread_messages(tid)
        .await?
        .into_iter()
        .find(|m| m.message.kind == MessageKind::Request)
        .and_then(|m| m.message.message_id))
}

/// The original request, to a new category's group: decrypted again from the stored mail so
/// the files go unchanged; the text of the form when that is no longer possible.
async fn forward_again(
    intake: &Intake,
    t: &Thread,
    c: &Category,
    author: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Outgoing> {
    let tid = t.id.to_string();
    let messages = intake.store.thread_messages(&tid).await?;
    let request_msg = messages
        .iter()
        .find(|m| m.message.kind == MessageKind::Request);
    let mut attachments = vec![];
    if let Some(inbound) = request_msg.and_then(|m| m.message.inbound_id)
        && let Some(row) = intake.store.get_inbound(inbound).await?
        && let Ok(auth) = intake.smime.authenticate(&row.raw, now)
    {
        attachments = super::content::read_content(&auth.content).attachments;
    }
    let original = request_msg
        .and_then(|m| m.message.body_text.clone())
        .unwrap_or_default();
    let text = notices::transferred_forward(&intake.settings, t, c, &original, author);
    let subject = thread::subject(&t.id, &c.name, "Nouvelle demande (transfert)");
    let to = vec![c.group_address.clone()];
    let mut m = outbox::gateway_message(&intake.settings, to, subject, text, Some(&tid));
    m.automatic = false;
    m.attachments = attachments;
    Ok(m)
}

/// The compte-rendu to the GP and a copy to the group: text body plus the PDF (and, for the
/// patient's record, `IHE_XDM.ZIP`); its billing acts settled; audited.
async fn send_report(
    intake: &Intake,
    tx: &mut Tx,
    t: &Thread,
    c: &Category,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let tid = t.id.to_string();
    // The thread's own rows written in this transaction are not visible to pool reads: build
    // the report from a connection inside the transaction.
    let messages = intake.store.thread_messages_in(tx, &tid).await?;
    let s = &intake.settings;
    let mut data =
        crate::report::assemble(&s.gateway.network, &intake.catalogue, t, &messages, now);
    // Directory (issue 10): names and specialties of the people in the compte-rendu.
    crate::directory::hooks::enrich_report(&intake.store, tx, &mut data).await?;
    // Hook (issue 11): the thread's billing acts, decided and recorded as the compte-rendu is
    // sent (in this transaction, so the yearly cap never counts a thread twice).
    let billing = &s.billing;
    data.acts = intake
        .store
        .settle_acts(tx, &data, &billing.tariff(), billing.max_per_year, now)
        .await?;
    let text = crate::report::render_text(&data);
    let pdf = crate::report::render_pdf(&data)?;
    // Hook (issue 11): the CDA in IHE_XDM.ZIP and the X-MSS headers, for the patient's record.
    let identity = s.record.identity(&s.gateway.network);
    let record = crate::report::record_mail(&data, identity.as_ref(), &pdf)?;
    for to in [t.requester.clone(), c.group_address.clone()] {
        let m = report_message(intake, t, c, to, &text, &pdf, &record);
        send(intake, tx, &tid, OutboxKind::Report, m, now).await?;
    }
    let detail = serde_json::json!({"status": data.status});
    intake
        .store
        .append_audit(tx, "gateway", "thread.report", &tid, &detail, now)
        .await?;
    Ok(())
}

/// THE compte-rendu mail (one per recipient): subject `[TE-…] Compte-rendu — <catégorie>`,
/// the text, the PDF, and the record's parts: `IHE_XDM.ZIP` (the CDA) and the `X-MSS-*`
/// headers, when there is a record to send.
fn report_message(
    intake: &Intake,
    t: &Thread,
    c: &Category,
    to: crate::address::EmailAddress,
    text: &str,
    pdf: &[u8],
    record: &crate::report::RecordMail,
) -> Outgoing {
    let tid = t.id.to_string();
    let subject = thread::subject(&t.id, &c.name, "Compte-rendu");
    let mut m = outbox::gateway_message(
        &intake.settings,
        vec![to],
        subject,
        text.to_string(),
        Some(&tid),
    );
    m.attachments = vec![Attachment {
        name: crate::report::pdf_file_name(&tid),
        content_type: "application/pdf".into(),
        bytes: pdf.into(),
    }];
    if let Some(zip) = &record.archive {
        m.attachments.push(Attachment {
            name: crate::report::XDM_FILE_NAME.into(),
            content_type: "application/zip".into(),
            bytes: zip.as_slice().into(),
        });
    }
    m.extra_headers = record.headers.clone();
    m
}
