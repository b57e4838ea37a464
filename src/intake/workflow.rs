//! The téléexpertise workflow over an authenticated message: classify it (reply in a thread,
//! help, new request), parse the form, apply it to its thread through the pure transition
//! table, and enqueue the outgoing mail. Runs inside the message's transaction.

use chrono::{DateTime, Datelike, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};
use tracing::info;

use super::{Decision, Envelope, Intake, Reason, notices};
use crate::address::EmailAddress;
use crate::config::CategorySettings;
use crate::form::{self, FormTemplate, RequestForm};
use crate::mail::compose::{Attachment, Outgoing};
use crate::report::{self, ReportData};
use crate::smime::Authenticated;
use crate::store::{NewThreadMessage, ThreadMessageRow, ThreadRow, ThreadUpdate, Tx};
use crate::thread::{self, Action, Categories, Event, Notice, Refusal, Role, Status, ThreadId};

/// The readable part of an authenticated message: its text and its files.
pub struct Content {
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// Reads the innermost MIME entity: the text body (HTML-only bodies converted to text) and
/// every attachment, byte for byte, with its file name.
pub fn read_content(entity: &[u8]) -> Content {
    let Some(m) = MessageParser::default().parse(entity) else {
        return Content {
            text: String::from_utf8_lossy(entity).into_owned(),
            attachments: vec![],
        };
    };
    let text = if m.text_body_count() > 0 {
        m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    } else if let Some(html) = m.body_html(0) {
        form::html_to_text(&html)
    } else {
        String::new()
    };
    let attachments = m
        .attachments()
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            Attachment {
                name: part
                    .attachment_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("piece-jointe-{}", i + 1)),
                content_type,
                bytes: part.contents().to_vec(),
            }
        })
        .collect();
    Content {
        text: text.replace("\r\n", "\n"),
        attachments,
    }
}

fn attachments_json(atts: &[Attachment]) -> String {
    let v: Vec<_> = atts
        .iter()
        .map(|a| {
            serde_json::json!({
                "name": a.name,
                "content_type": a.content_type,
                "size": a.bytes.len(),
                "sha256": hex::encode(Sha256::digest(&a.bytes)),
            })
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

/// The gateway addresses a message was sent to, with their plus-tags.
fn gateway_recipients<'a>(
    intake: &Intake,
    envelope: &'a Envelope,
) -> impl Iterator<Item = &'a EmailAddress> {
    let base = intake.settings.gateway.address.base();
    envelope.recipients.iter().filter(move |r| r.base() == base)
}

fn category_by_name<'a>(intake: &'a Intake, written: &str) -> Option<&'a CategorySettings> {
    let w = form::fold_label(written);
    intake
        .settings
        .categories
        .iter()
        .find(|c| form::fold_label(&c.id) == w || form::fold_label(&c.name) == w)
}

/// Plus-tag, then aliases.
fn category_from_recipients<'a>(
    intake: &'a Intake,
    envelope: &Envelope,
) -> Option<&'a CategorySettings> {
    for r in gateway_recipients(intake, envelope) {
        // Desk (issue 10): `+<category>-urgent` is the category's urgent line.
        if let Some(c) = r.plus_tag().and_then(|t| {
            intake.settings.category(t).or_else(|| {
                crate::desk::deadline::urgent_tag(t).and_then(|b| intake.settings.category(b))
            })
        }) {
            return Some(c);
        }
    }
    intake.settings.categories.iter().find(|c| {
        c.aliases
            .iter()
            .any(|a| envelope.recipients.iter().any(|r| r.base() == a.base()))
    })
}

/// Where the message points to a thread: plus-address token, then In-Reply-To/References,
/// then the subject token. `Err(id)` for a token naming no thread.
async fn find_thread(
    intake: &Intake,
    envelope: &Envelope,
) -> anyhow::Result<Result<Option<ThreadRow>, String>> {
    let store = &intake.store;
    for r in gateway_recipients(intake, envelope) {
        if let Some(id) = r.plus_tag().and_then(ThreadId::from_plus_tag) {
            return Ok(store
                .get_thread(&id.to_string())
                .await?
                .ok_or(id.to_string())
                .map(Some));
        }
    }
    let parents = envelope.parent_ids();
    if !parents.is_empty()
        && let Some(id) = store.find_thread_by_message_ids(&parents).await?
    {
        return Ok(Ok(store.get_thread(&id).await?));
    }
    if let Some(id) = ThreadId::from_subject(&envelope.subject) {
        return Ok(store
            .get_thread(&id.to_string())
            .await?
            .ok_or(id.to_string())
            .map(Some));
    }
    Ok(Ok(None))
}

pub async fn apply(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    envelope: &Envelope,
    msg: &Authenticated,
    now: DateTime<Utc>,
) -> anyhow::Result<Decision> {
    let from = msg.signer.email.clone();
    let content = read_content(&msg.content);
    match find_thread(intake, envelope).await? {
        Err(unknown) => {
            let text = notices::unknown_thread(&intake.settings, &unknown);
            intake
                .auto_reply(tx, &from, envelope, "Référence inconnue", text, None, now)
                .await?;
            Ok(Decision::Quarantined {
                reason: Reason::UnknownThread,
                detail: format!("token {unknown} names no thread"),
            })
        }
        // The new request the closed-thread notice asks for: its `Demande précédente` line
        // names the closed thread that the subject token or In-Reply-To still point to.
        Ok(Some(thread)) if continues_closed(&thread, &content.text) => {
            request(intake, tx, inbound_id, envelope, msg, content, now).await
        }
        Ok(Some(thread)) => {
            reply(intake, tx, inbound_id, envelope, msg, content, thread, now).await
        }
        Ok(None) => request(intake, tx, inbound_id, envelope, msg, content, now).await,
    }
}

// ---------------------------------------------------------------------------------------------
// A new request.

async fn request(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    envelope: &Envelope,
    msg: &Authenticated,
    content: Content,
    now: DateTime<Utc>,
) -> anyhow::Result<Decision> {
    let s = &intake.settings;
    let from = msg.signer.email.clone();
    let today = now.with_timezone(&intake.tz).date_naive();
    if form::fold_label(&envelope.subject).trim_end_matches(['?', '!', '.', ' ']) == "aide" {
        let text = notices::help(s, None);
        intake
            .auto_reply(tx, &from, envelope, "Aide", text, None, now)
            .await?;
        return Ok(Decision::Processed { thread: None });
    }
    // Directory (issue 10): a requérant whose profession may not request is told so.
    if let Some(text) =
        crate::directory::hooks::refuse_requester(&intake.store, tx, s, from.as_str()).await?
    {
        intake
            .auto_reply(tx, &from, envelope, "Demande refusée", text, None, now)
            .await?;
        info!(
            inbound_id,
            "request refused: the directory's profession may not request"
        );
        return Ok(Decision::Processed { thread: None });
    }
    let previous = previous_thread(&content.text);
    let category = match category_from_recipients(intake, envelope) {
        Some(c) => Some(c),
        None => {
            // The `Catégorie :` line is read with the common template, which every form shares.
            let parsed = form::parse_form(&FormTemplate::common(), &content.text, today);
            match parsed
                .category
                .as_deref()
                .and_then(|c| category_by_name(intake, c))
            {
                Some(c) => Some(c),
                // A follow-up of a closed thread (sent in reply to the closed-thread notice, to
                // its token address) goes to that thread's category.
                None => match &previous {
                    Some(p) => intake
                        .store
                        .get_thread(p)
                        .await?
                        .and_then(|t| s.category(&t.category)),
                    None => None,
                },
            }
        }
    };
    let Some(category) = category else {
        let text = notices::help(
            s,
            Some("Votre message ne dit pas à quelle spécialité il s'adresse."),
        );
        intake
            .auto_reply(tx, &from, envelope, "Aide", text, None, now)
            .await?;
        return Ok(Decision::Processed { thread: None });
    };
    let template = match FormTemplate::for_category(&category.fields) {
        Ok(t) => t,
        Err(e) => anyhow::bail!("category {}: form template: {e}", category.id),
    };
    let parsed = form::parse_form(&template, &content.text, today);
    let request = match parsed.to_request() {
        Ok(r) if parsed.is_valid() => r,
        Ok(_) | Err(_) => {
            let problems = if parsed.problems.is_empty() {
                parsed.to_request().err().unwrap_or_default()
            } else {
                parsed.problems.clone()
            };
            let text = notices::form_problems(s, category, &problems, &parsed.filled_in(&template));
            intake
                .auto_reply(tx, &from, envelope, "Demande incomplète", text, None, now)
                .await?;
            info!(
                inbound_id,
                problems = problems.len(),
                "request incomplete, sender told"
            );
            return Ok(Decision::Processed { thread: None });
        }
    };

    let year = now.with_timezone(&intake.tz).year();
    let seq = intake.store.next_thread_seq(tx, year).await?;
    let id = ThreadId::new(year, u32::try_from(seq)?);
    let tid = id.to_string();
    intake
        .store
        .insert_thread(
            tx,
            &ThreadRow {
                id: tid.clone(),
                status: Status::Nouvelle.as_str().into(),
                category: category.id.clone(),
                requester: from.to_string(),
                requester_name: msg.signer.display_name.clone(),
                requester_rpps: msg.signer.rpps.clone(),
                taken_by: None,
                form_json: serde_json::to_string(&request)?,
                previous_thread: previous.clone(),
                created_at: now,
                updated_at: now,
                closed_at: None,
            },
        )
        .await?;
    record_in(
        intake,
        tx,
        &tid,
        "request",
        envelope,
        msg,
        &content.text,
        &content.attachments,
        inbound_id,
        now,
    )
    .await?;
    intake
        .store
        .append_audit(tx, from.as_str(), "thread.opened", &tid, &serde_json::json!({"category": category.id, "inbound_id": inbound_id, "previous": previous}), now)
        .await?;

    // Acknowledgement to the GP.
    // Desk (issue 10): the deadline (standard or urgent line), stated in the acknowledgement.
    let tags: Vec<String> = gateway_recipients(intake, envelope)
        .filter_map(|r| r.plus_tag().map(str::to_owned))
        .collect();
    let (ack_text, urgent) = crate::desk::hooks::open_deadline(
        &intake.store,
        tx,
        s,
        category,
        &tid,
        &tags,
        &request.unlisted,
        notices::ack(s, &id, category, previous.as_deref()),
        now,
    )
    .await?;
    let mut ack = intake.gateway_message(
        vec![from.clone()],
        thread::subject(&id, &category.name, "Accusé de réception"),
        // Directory (issue 10): who the requérant and the experts are.
        crate::directory::hooks::amend_ack(&intake.store, tx, category, from.as_str(), ack_text)
            .await?,
        Some(&tid),
    );
    ack.in_reply_to = envelope.message_id.clone();
    ack.references = envelope.message_id.iter().cloned().collect();
    send(intake, tx, &tid, "ack", ack, now).await?;

    // The request to the group, with the files unchanged.
    let mut fwd = intake.gateway_message(
        vec![category.group_address.clone()],
        thread::subject(&id, &category.name, "Nouvelle demande"),
        // Directory (issue 10): the requérant's profession, specialty and department.
        crate::directory::hooks::amend_forward(
            &intake.store,
            tx,
            from.as_str(),
            notices::forward(s, &id, category, &request, &msg.signer, &content.text),
        )
        .await?,
        Some(&tid),
    );
    fwd.automatic = false;
    fwd.attachments = content.attachments;
    send(intake, tx, &tid, "forward", fwd, now).await?;
    // Desk (issue 10): a notice to each expert on duty in the category now.
    for (to, text) in
        crate::desk::hooks::on_duty_notices(&intake.store, tx, s, category, &tid, now).await?
    {
        let notice = intake.gateway_message(
            vec![to],
            thread::subject(
                &id,
                &category.name,
                if urgent { "URGENT" } else { "Nouvelle demande" },
            ),
            text,
            Some(&tid),
        );
        send(intake, tx, &tid, "notice", notice, now).await?;
    }
    info!(inbound_id, thread = %tid, category = %category.id, "thread opened");
    Ok(Decision::Processed { thread: Some(tid) })
}

/// A message about a closed thread that is a new request following it.
fn continues_closed(thread: &ThreadRow, text: &str) -> bool {
    Status::parse(&thread.status).is_ok_and(|s| s.is_closed())
        && previous_thread(text).as_deref() == Some(thread.id.as_str())
}

/// `Demande précédente : TE-2026-000042` links a new request to a closed one.
fn previous_thread(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let folded = form::fold_label(l);
        if folded.starts_with("demande precedente") || folded.starts_with("suite de") {
            ThreadId::from_subject(&format!(
                "[{}]",
                l.split(':')
                    .nth(1)
                    .unwrap_or(l)
                    .trim()
                    .trim_matches(['[', ']'])
            ))
            .map(|t| t.to_string())
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------------------------
// A message about an existing thread.

#[allow(clippy::too_many_arguments)]
async fn reply(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    envelope: &Envelope,
    msg: &Authenticated,
    content: Content,
    thread: ThreadRow,
    now: DateTime<Utc>,
) -> anyhow::Result<Decision> {
    let s = &intake.settings;
    let from = msg.signer.email.clone();
    let tid = thread.id.clone();
    let id = ThreadId::parse(&tid)?;
    let status = Status::parse(&thread.status)?;
    let Some(category) = s.category(&thread.category) else {
        anyhow::bail!(
            "thread {tid}: category {} is no longer configured",
            thread.category
        );
    };
    let requester = EmailAddress::parse(&thread.requester)?;
    let role = thread::role_of(&from, &requester, category);
    // Desk (issue 10): an expert on the category's roster posts like a listed expert.
    let role = crate::desk::hooks::roster_role(&intake.store, tx, role, &from, category).await?;
    // Directory (issue 10): an expert whose profession may not answer is refused.
    let role = crate::directory::hooks::may_answer(
        &intake.store,
        tx,
        &intake.settings.directory,
        role,
        from.as_str(),
    )
    .await?;
    let text = thread::strip_quoted(&content.text);
    let command = thread::parse_command(&text);
    let (event, text) = match &command {
        Some(c) => (Event::Command(c.command.clone()), c.remaining_text.clone()),
        None => (
            if role == Role::Requester {
                Event::RequesterMessage
            } else {
                Event::ExpertMessage
            },
            text,
        ),
    };
    let known: Vec<&str> = s.categories.iter().map(|c| c.id.as_str()).collect();
    let outcome = match thread::apply(
        status,
        role,
        &event,
        &Categories {
            current: &category.id,
            known: &known,
        },
    ) {
        Ok(o) => o,
        Err(Refusal::NotAuthorized) => {
            let notice = notices::not_authorized(s, &id);
            intake
                .auto_reply(
                    tx,
                    &from,
                    envelope,
                    "Message non transmis",
                    notice,
                    None,
                    now,
                )
                .await?;
            return Ok(Decision::Quarantined {
                reason: Reason::NotAuthorized,
                detail: format!("{from} is not a participant of {tid}"),
            });
        }
        Err(Refusal::Closed(st)) => {
            let notice = notices::closed(s, &id, st, category);
            intake
                .auto_reply(
                    tx,
                    &from,
                    envelope,
                    "Demande close",
                    notice,
                    Some(&tid),
                    now,
                )
                .await?;
            record_in(
                intake,
                tx,
                &tid,
                "notice",
                envelope,
                msg,
                &text,
                &[],
                inbound_id,
                now,
            )
            .await?;
            return Ok(Decision::Processed { thread: Some(tid) });
        }
        Err(refusal) => {
            let mut why = refusal.to_string();
            if matches!(refusal, Refusal::UnknownCategory(_)) {
                // Say which ids `#transferer` takes.
                let list: Vec<String> = s
                    .categories
                    .iter()
                    .map(|c| format!("{} ({})", c.id, c.name))
                    .collect();
                why.push_str(&format!(" ; catégories : {}", list.join(", ")));
            }
            let notice = notices::refused(s, &id, &why);
            intake
                .auto_reply(
                    tx,
                    &from,
                    envelope,
                    "Commande refusée",
                    notice,
                    Some(&tid),
                    now,
                )
                .await?;
            return Ok(Decision::Processed { thread: Some(tid) });
        }
    };
    // Desk (issue 10): an expert's answer, #prendre, #clore or #annuler stops the deadline
    // (a #transferer gives the new category the time left).
    let transfer = matches!(&event, Event::Command(thread::Command::Transferer(_)));
    if !transfer {
        let cancelled = matches!(&event, Event::Command(thread::Command::Annuler));
        crate::desk::hooks::stop_deadline(&intake.store, tx, &tid, role, cancelled, now).await?;
    }
    let kind = match (&command, role) {
        // The final answer of `#clore` is an answer (stats count the first answer's time).
        (Some(c), _) if c.command == thread::Command::Clore && !text.trim().is_empty() => "answer",
        (Some(_), _) => "command",
        (None, Role::Requester) => "follow_up",
        (None, _) => "answer",
    };
    record_in(
        intake,
        tx,
        &tid,
        kind,
        envelope,
        msg,
        &text,
        &content.attachments,
        inbound_id,
        now,
    )
    .await?;

    let mut category_now = category;
    let mut taken_by = thread.taken_by.clone();
    let author = author_line(msg, &from);
    for action in &outcome.actions {
        match action {
            Action::MoveTo(c) => {
                if let Some(next) = s.category(c) {
                    category_now = next;
                }
            }
            Action::Take => taken_by = Some(from.to_string()),
            _ => {}
        }
    }
    intake
        .store
        .update_thread(
            tx,
            &ThreadUpdate {
                id: &tid,
                status: outcome.status.as_str(),
                category: &category_now.id,
                taken_by: taken_by.as_deref(),
                updated_at: now,
                closed_at: outcome.status.is_closed().then_some(now),
            },
        )
        .await?;
    intake
        .store
        .append_audit(
            tx,
            from.as_str(),
            &format!("thread.{}", kind),
            &tid,
            &serde_json::json!({"from_status": status.as_str(), "to_status": outcome.status.as_str(), "command": command.as_ref().map(|c| c.command.name()), "category": category_now.id, "inbound_id": inbound_id}),
            now,
        )
        .await?;

    for action in &outcome.actions {
        match action {
            Action::RelayToRequester
                if !text.trim().is_empty() || !content.attachments.is_empty() =>
            {
                let mut m = intake.gateway_message(
                    vec![requester.clone()],
                    thread::subject(&id, &category_now.name, "Réponse"),
                    notices::relay_to_requester(s, &id, &author, &text),
                    Some(&tid),
                );
                m.automatic = false;
                m.attachments = content.attachments.clone();
                m.in_reply_to = first_request_id(intake, &tid).await?;
                send(intake, tx, &tid, "answer", m, now).await?;
            }
            Action::RelayToGroup if !text.trim().is_empty() || !content.attachments.is_empty() => {
                let word = if role == Role::Requester {
                    "Complément du requérant"
                } else {
                    "Message"
                };
                let mut m = intake.gateway_message(
                    vec![category_now.group_address.clone()],
                    thread::subject(&id, &category_now.name, word),
                    notices::relay_to_group(s, &id, &author, &text),
                    Some(&tid),
                );
                m.automatic = false;
                m.attachments = content.attachments.clone();
                send(intake, tx, &tid, "follow_up", m, now).await?;
            }
            Action::ForwardRequest => {
                forward_again(intake, tx, &thread, &id, category_now, &author, now).await?;
            }
            Action::SendReport => {
                send_report(intake, tx, &tid, category_now, now).await?;
            }
            Action::NotifyRequester(n) => {
                let m = intake.gateway_message(
                    vec![requester.clone()],
                    thread::subject(&id, &category_now.name, notice_word(*n)),
                    notices::notice(s, &id, *n, &author, category_now),
                    Some(&tid),
                );
                send(intake, tx, &tid, "notice", m, now).await?;
            }
            Action::NotifyGroup(n) => {
                let m = intake.gateway_message(
                    vec![category_now.group_address.clone()],
                    thread::subject(&id, &category_now.name, notice_word(*n)),
                    notices::notice(s, &id, *n, &author, category_now),
                    Some(&tid),
                );
                send(intake, tx, &tid, "notice", m, now).await?;
            }
            Action::NotifyPreviousGroup(n) if category_now.id != category.id => {
                let m = intake.gateway_message(
                    vec![category.group_address.clone()],
                    thread::subject(&id, &category.name, notice_word(*n)),
                    notices::notice(s, &id, *n, &author, category_now),
                    Some(&tid),
                );
                send(intake, tx, &tid, "notice", m, now).await?;
            }
            _ => {}
        }
    }
    info!(inbound_id, thread = %tid, kind, to_status = outcome.status.as_str(), "thread updated");
    Ok(Decision::Processed { thread: Some(tid) })
}

fn notice_word(n: Notice) -> &'static str {
    match n {
        Notice::Taken => "Prise en charge",
        Notice::Transferred => "Transfert",
        Notice::Cancelled => "Annulation",
        Notice::AutoClosed => "Clôture automatique",
    }
}

fn author_line(msg: &Authenticated, from: &EmailAddress) -> String {
    let name = msg
        .signer
        .display_name
        .clone()
        .unwrap_or_else(|| from.to_string());
    match &msg.signer.rpps {
        Some(r) => format!("{name} (RPPS {r})"),
        None => name,
    }
}

/// The request form stored with a thread. A parse error is reported by position only: serde's
/// message could quote the patient data it choked on, and errors reach logs and admin alerts.
fn stored_form(thread: &ThreadRow) -> anyhow::Result<RequestForm> {
    serde_json::from_str(&thread.form_json).map_err(|e| {
        anyhow::anyhow!(
            "thread {}: stored request form unreadable (line {}, column {})",
            thread.id,
            e.line(),
            e.column()
        )
    })
}

/// The GP's own request Message-ID, so replies thread under it in their client.
async fn first_request_id(intake: &Intake, tid: &str) -> anyhow::Result<Option<String>> {
    Ok(intake
        .store
        .thread_messages(tid)
        .await?
        .into_iter()
        .find(|m| m.message.kind == "request")
        .and_then(|m| m.message.message_id))
}

/// The original request, to a new category's group: decrypted again from the stored mail so
/// the files go unchanged; the text of the form when that is no longer possible.
async fn forward_again(
    intake: &Intake,
    tx: &mut Tx,
    thread: &ThreadRow,
    id: &ThreadId,
    category: &CategorySettings,
    author: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let messages = intake.store.thread_messages(&thread.id).await?;
    let request_msg = messages.iter().find(|m| m.message.kind == "request");
    let mut attachments = vec![];
    if let Some(inbound) = request_msg.and_then(|m| m.message.inbound_id)
        && let Some(row) = intake.store.get_inbound(inbound).await?
        && let Ok(auth) = intake.smime.authenticate(&row.raw, now)
    {
        attachments = read_content(&auth.content).attachments;
    }
    let request = stored_form(thread)?;
    let original = request_msg
        .and_then(|m| m.message.body_text.clone())
        .unwrap_or_default();
    let requester_name = thread
        .requester_name
        .clone()
        .unwrap_or_else(|| thread.requester.clone());
    let text = notices::transferred_forward(
        &intake.settings,
        id,
        category,
        &request,
        &requester_name,
        thread.requester_rpps.as_deref(),
        &original,
        author,
    );
    let mut m = intake.gateway_message(
        vec![category.group_address.clone()],
        thread::subject(id, &category.name, "Nouvelle demande (transfert)"),
        text,
        Some(&thread.id),
    );
    m.automatic = false;
    m.attachments = attachments;
    send(intake, tx, &thread.id, "forward", m, now).await
}

/// Queues a message and records it in the thread.
async fn send(
    intake: &Intake,
    tx: &mut Tx,
    tid: &str,
    kind: &str,
    m: Outgoing,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let (outbox_id, message_id) =
        crate::outbox::enqueue(&intake.store, tx, &intake.settings, kind, &m, now).await?;
    intake
        .store
        .add_thread_message(
            tx,
            &NewThreadMessage {
                thread_id: tid.to_string(),
                direction: "out".into(),
                kind: kind.into(),
                from_addr: m.from.to_string(),
                to_addrs: m.to.iter().map(|a| a.to_string()).collect(),
                at: now,
                message_id: Some(message_id),
                author_name: None,
                author_rpps: None,
                body_text: None,
                attachments_json: attachments_json(&m.attachments),
                inbound_id: None,
                outbox_id: Some(outbox_id),
            },
        )
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record_in(
    intake: &Intake,
    tx: &mut Tx,
    tid: &str,
    kind: &str,
    envelope: &Envelope,
    msg: &Authenticated,
    text: &str,
    atts: &[Attachment],
    inbound_id: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    intake
        .store
        .add_thread_message(
            tx,
            &NewThreadMessage {
                thread_id: tid.to_string(),
                direction: "in".into(),
                kind: kind.into(),
                from_addr: msg.signer.email.to_string(),
                to_addrs: envelope.recipients.iter().map(|a| a.to_string()).collect(),
                at: now,
                message_id: envelope.message_id.clone(),
                author_name: msg.signer.display_name.clone(),
                author_rpps: msg.signer.rpps.clone(),
                body_text: Some(text.to_string()),
                attachments_json: attachments_json(atts),
                inbound_id: Some(inbound_id),
                outbox_id: None,
            },
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The compte-rendu.

/// Everything the compte-rendu needs, from the database (outside a transaction).
pub async fn report_data(
    store: &crate::store::Store,
    settings: &crate::config::Settings,
    tid: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<ReportData> {
    let thread = store
        .get_thread(tid)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no thread {tid}"))?;
    let messages = store.thread_messages(tid).await?;
    let mut data = report_data_from(settings, &thread, &messages, now)?;
    // Directory (issue 10): names and specialties of the people in the compte-rendu.
    let mut conn = store.pool().acquire().await?;
    crate::directory::hooks::enrich_report(store, &mut conn, &mut data).await?;
    Ok(data)
}

/// The compte-rendu's data from a thread and its messages.
pub fn report_data_from(
    settings: &crate::config::Settings,
    thread: &ThreadRow,
    messages: &[ThreadMessageRow],
    now: DateTime<Utc>,
) -> anyhow::Result<ReportData> {
    let tz: chrono_tz::Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);
    let request = stored_form(thread)?;
    let category_name = settings
        .category(&thread.category)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| thread.category.clone());
    let mut exchanges = vec![];
    let mut attachments = vec![];
    let mut experts: Vec<report::ReportPerson> = vec![];
    let mut answered_at = None;
    for m in messages
        .iter()
        .map(|m| &m.message)
        .filter(|m| m.direction == "in")
    {
        if !["request", "answer", "follow_up", "command"].contains(&m.kind.as_str()) {
            continue;
        }
        let is_requester = m.from_addr == thread.requester;
        if !is_requester {
            answered_at.get_or_insert(m.at);
            if !experts.iter().any(|e| e.address == m.from_addr) {
                // The category the expert (or group) belongs to: after a transfer, the first
                // category's experts keep their own specialty.
                let specialty = EmailAddress::parse(&m.from_addr)
                    .ok()
                    .and_then(|a| {
                        settings.categories.iter().find(|c| {
                            c.group_address.base() == a.base()
                                || c.experts.iter().any(|e| e.base() == a.base())
                        })
                    })
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| category_name.clone());
                experts.push(report::ReportPerson {
                    // A group mailbox's certificate often bears the specialty as its name.
                    specialty: (m.author_name.as_deref() != Some(specialty.as_str()))
                        .then_some(specialty),
                    name: m.author_name.clone(),
                    address: m.from_addr.clone(),
                    rpps: m.author_rpps.clone(),
                });
            }
        }
        let text = m.body_text.clone().unwrap_or_default();
        let text = if m.kind == "request" {
            request.question.clone()
        } else {
            text
        };
        if !text.trim().is_empty() {
            exchanges.push(report::ReportExchange {
                author: m.author_name.clone().unwrap_or_else(|| m.from_addr.clone()),
                role: if is_requester {
                    "requérant".into()
                } else {
                    "expert".into()
                },
                at: m.at,
                text,
            });
        }
        if let Ok(serde_json::Value::Array(list)) =
            serde_json::from_str::<serde_json::Value>(&m.attachments_json)
        {
            for a in list {
                attachments.push(report::ReportAttachment {
                    name: a["name"].as_str().unwrap_or("").to_string(),
                    content_type: a["content_type"].as_str().unwrap_or("").to_string(),
                    size: a["size"].as_u64().unwrap_or(0),
                    sha256: a["sha256"].as_str().unwrap_or("").to_string(),
                });
            }
        }
    }
    let p = &request.patient;
    Ok(ReportData {
        thread_id: thread.id.clone(),
        network: settings.gateway.network.clone(),
        category_name,
        requested_at: thread.created_at,
        answered_at,
        closed_at: thread.closed_at,
        status: thread.status.clone(),
        patient: report::ReportPatient {
            birth_name: p.birth_name.clone(),
            used_name: p.used_name.clone(),
            first_names: p.first_names.clone(),
            sex: p.sex.letter().to_string(),
            birth_date: p.birth_date,
            nir: p.nir.as_ref().map(|n| n.formatted()),
        },
        requester: report::ReportPerson {
            name: thread.requester_name.clone(),
            address: thread.requester.clone(),
            specialty: None,
            rpps: thread.requester_rpps.clone(),
        },
        experts,
        consent_confirmed: request.consent,
        form_lines: request
            .extra
            .iter()
            .map(|f| (f.label.clone(), f.value.clone()))
            .collect(),
        exchanges,
        attachments,
        generated_at: now,
        timezone: tz,
    })
}

/// The compte-rendu to the GP and a copy to the group: text body plus the PDF.
async fn send_report(
    intake: &Intake,
    tx: &mut Tx,
    tid: &str,
    category: &CategorySettings,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    // The thread's own rows written in this transaction are not visible to pool reads: build
    // the report from a connection inside the transaction.
    let thread = intake
        .store
        .get_thread_in(tx, tid)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no thread {tid}"))?;
    let messages = intake.store.thread_messages_in(tx, tid).await?;
    let mut data = report_data_from(&intake.settings, &thread, &messages, now)?;
    // Directory (issue 10): names and specialties of the people in the compte-rendu.
    crate::directory::hooks::enrich_report(&intake.store, tx, &mut data).await?;
    let text = report::render_text(&data);
    let pdf = report::render_pdf(&data)?;
    let id = ThreadId::parse(tid)?;
    let requester = EmailAddress::parse(&thread.requester)?;
    for to in [requester, category.group_address.clone()] {
        let mut m = intake.gateway_message(
            vec![to],
            thread::subject(&id, &category.name, "Compte-rendu"),
            text.clone(),
            Some(tid),
        );
        m.attachments = vec![Attachment {
            name: report::pdf_file_name(tid),
            content_type: "application/pdf".into(),
            bytes: pdf.clone(),
        }];
        send(intake, tx, tid, "report", m, now).await?;
    }
    intake
        .store
        .append_audit(
            tx,
            "gateway",
            "thread.report",
            tid,
            &serde_json::json!({"status": data.status}),
            now,
        )
        .await?;
    Ok(())
}

/// Closes threads idle for `auto_close_days`, each in its own transaction, with a compte-rendu.
pub async fn auto_close(intake: &Intake, now: DateTime<Utc>) -> anyhow::Result<()> {
    let days = i64::from(intake.settings.gateway.auto_close_days);
    if days == 0 {
        return Ok(());
    }
    close_idle_since(intake, now - chrono::Duration::days(days), now).await
}

/// Closes the threads without activity since `cutoff`; `now` stamps what it writes.
pub async fn close_idle_since(
    intake: &Intake,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let days = i64::from(intake.settings.gateway.auto_close_days);
    for thread in intake.store.idle_threads(cutoff).await? {
        let Ok(status) = Status::parse(&thread.status) else {
            continue;
        };
        let Some(category) = intake.settings.category(&thread.category) else {
            continue;
        };
        let known: Vec<&str> = intake
            .settings
            .categories
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        let Ok(outcome) = thread::apply(
            status,
            Role::Group,
            &Event::AutoClose,
            &Categories {
                current: &category.id,
                known: &known,
            },
        ) else {
            continue;
        };
        let mut tx = intake.store.begin().await?;
        intake
            .store
            .update_thread(
                &mut tx,
                &ThreadUpdate {
                    id: &thread.id,
                    status: outcome.status.as_str(),
                    category: &category.id,
                    taken_by: thread.taken_by.as_deref(),
                    updated_at: now,
                    closed_at: Some(now),
                },
            )
            .await?;
        intake
            .store
            .append_audit(
                &mut tx,
                "gateway",
                "thread.auto_closed",
                &thread.id,
                &serde_json::json!({"from_status": status.as_str(), "idle_days": days}),
                now,
            )
            .await?;
        let id = ThreadId::parse(&thread.id)?;
        let requester = EmailAddress::parse(&thread.requester)?;
        for action in &outcome.actions {
            match action {
                Action::SendReport => {
                    send_report(intake, &mut tx, &thread.id, category, now).await?
                }
                Action::NotifyRequester(n) => {
                    let m = intake.gateway_message(
                        vec![requester.clone()],
                        thread::subject(&id, &category.name, notice_word(*n)),
                        notices::notice(&intake.settings, &id, *n, "", category),
                        Some(&thread.id),
                    );
                    send(intake, &mut tx, &thread.id, "notice", m, now).await?;
                }
                _ => {}
            }
        }
        tx.commit().await?;
        info!(thread = %thread.id, "closed for inactivity");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_stored_form_is_reported_without_its_content() {
        let now = Utc::now();
        let thread = ThreadRow {
            id: "TE-2026-000042".into(),
            status: "nouvelle".into(),
            category: "infectio".into(),
            requester: "dr.martin@cabinet.test".into(),
            requester_name: None,
            requester_rpps: None,
            taken_by: None,
            // serde's own message would quote the bad value: "unknown variant `DUPONT`…".
            form_json: r#"{"patient":{"birth_name":"x","sex":"DUPONT"}}"#.into(),
            previous_thread: None,
            created_at: now,
            updated_at: now,
            closed_at: None,
        };
        let raw = serde_json::from_str::<RequestForm>(&thread.form_json).unwrap_err();
        assert!(
            raw.to_string().contains("DUPONT"),
            "the case must be one serde would leak"
        );
        let err = stored_form(&thread).unwrap_err().to_string();
        assert!(err.contains("TE-2026-000042"), "{err}");
        assert!(
            !err.contains("DUPONT") && !err.contains("birth_name"),
            "{err}"
        );
    }
}
