//! What an authenticated message is, decided once: help, a new request (and for which
//! category), a message in a thread (from whom, saying what), or a token naming no thread.
//! Reads the store (in the message's transaction), writes nothing.

use chrono::{DateTime, Utc};

use super::stage::Message;
use super::{Envelope, Intake};
use crate::address::EmailAddress;
use crate::catalogue::Category;
use crate::form::{self, FormTemplate};
use crate::store::Tx;
use crate::thread::{self, Command, Event, Role, Thread, ThreadId};

/// The closed set of things a message can be.
pub enum Class<'a> {
    /// Subject `aide`: the list of categories and their blank forms.
    Help,
    /// A request that names no category (no plus-tag, alias, or `Catégorie :` line): help,
    /// saying so.
    NoCategory,
    /// A new request. `previous`: the closed thread it continues (`Demande précédente :`).
    NewRequest {
        category: &'a Category,
        previous: Option<ThreadId>,
    },
    /// A message about an open or closed thread; the transition table decides what it does.
    InThread(Box<InThread<'a>>),
    /// A thread token (plus-address or subject) that names no thread.
    UnknownThread { token: String },
}

/// A message about a thread, read: who wrote it, what it asks, what it says.
pub struct InThread<'a> {
    pub thread: Thread,
    /// The thread's category now.
    pub category: &'a Category,
    pub role: Role,
    pub event: Event,
    pub command: Option<Command>,
    /// The message's own text: quoted history stripped, the command line removed.
    pub text: String,
}

pub async fn classify<'a>(
    intake: &'a Intake,
    tx: &mut Tx,
    envelope: &Envelope,
    now: DateTime<Utc>,
    msg: &Message,
) -> anyhow::Result<Class<'a>> {
    let text = &msg.content.text;
    match find_thread(intake, envelope).await? {
        Err(token) => Ok(Class::UnknownThread { token }),
        // The new request the closed-thread notice asks for: its `Demande précédente` line
        // names the closed thread that the subject token or In-Reply-To still point to.
        Ok(Some(t)) if t.status.is_closed() && previous_thread(text).as_ref() == Some(&t.id) => {
            new_request(intake, envelope, now, text).await
        }
        Ok(Some(t)) => Ok(Class::InThread(Box::new(
            in_thread(intake, tx, msg, t).await?,
        ))),
        Ok(None) => new_request(intake, envelope, now, text).await,
    }
}

async fn new_request<'a>(
    intake: &'a Intake,
    envelope: &Envelope,
    now: DateTime<Utc>,
    text: &str,
) -> anyhow::Result<Class<'a>> {
    let cat = &intake.catalogue;
    if form::fold_label(&envelope.subject).trim_end_matches(['?', '!', '.', ' ']) == "aide" {
        return Ok(Class::Help);
    }
    let previous = previous_thread(text);
    let mut category = gateway_recipients(intake, envelope)
        .find_map(|r| {
            r.plus_tag().and_then(|t| {
                // Desk (issue 10): `+<category>-urgent` is the category's urgent line.
                cat.get(t)
                    .or_else(|| crate::desk::deadline::urgent_tag(t).and_then(|b| cat.get(b)))
            })
        })
        .or_else(|| cat.by_alias(&envelope.recipients));
    if category.is_none() {
        // The `Catégorie :` line is read with the common template, which every form shares.
        let today = now.with_timezone(&cat.tz).date_naive();
        let parsed = form::parse_form(&FormTemplate::common(), text, today);
        category = parsed.category.as_deref().and_then(|c| cat.by_name(c));
    }
    if category.is_none()
        && let Some(p) = &previous
    {
        // A follow-up of a closed thread (sent in reply to the closed-thread notice, to its
        // token address) goes to that thread's category.
        category = intake
            .store
            .thread(p)
            .await?
            .and_then(|t| cat.get(&t.category));
    }
    Ok(match category {
        Some(category) => Class::NewRequest { category, previous },
        None => Class::NoCategory,
    })
}

async fn in_thread<'a>(
    intake: &'a Intake,
    tx: &mut Tx,
    msg: &Message,
    thread: Thread,
) -> anyhow::Result<InThread<'a>> {
    let Some(category) = intake.catalogue.get(&thread.category) else {
        anyhow::bail!(
            "thread {}: category {} is no longer configured",
            thread.id,
            thread.category
        );
    };
    let from = &msg.signer().email;
    let role = thread::role_of(
        from,
        &thread.requester,
        &category.group_address,
        &category.experts,
    );
    // Desk (issue 10): an expert on the category's roster posts like a listed expert.
    let role = crate::desk::hooks::roster_role(&intake.store, tx, role, from, category).await?;
    // Directory (issue 10): an expert whose profession may not answer is refused.
    let directory = &intake.settings.directory;
    let role =
        crate::directory::hooks::may_answer(&intake.store, tx, directory, role, from.as_str())
            .await?;
    let stripped = thread::strip_quoted(&msg.content.text);
    let (event, command, text) = match thread::parse_command(&stripped) {
        Some(c) => (
            Event::Command(c.command.clone()),
            Some(c.command),
            c.remaining_text,
        ),
        None if role == Role::Requester => (Event::RequesterMessage, None, stripped),
        None => (Event::ExpertMessage, None, stripped),
    };
    Ok(InThread {
        thread,
        category,
        role,
        event,
        command,
        text,
    })
}

/// The gateway addresses a message was sent to, with their plus-tags.
fn gateway_recipients<'a>(
    intake: &Intake,
    envelope: &'a Envelope,
) -> impl Iterator<Item = &'a EmailAddress> {
    let base = intake.settings.gateway.address.base();
    envelope.recipients.iter().filter(move |r| r.base() == base)
}

/// Where the message points to a thread: plus-address token, then In-Reply-To/References,
/// then the subject token. `Err(token)` for a token naming no thread.
async fn find_thread(
    intake: &Intake,
    envelope: &Envelope,
) -> anyhow::Result<Result<Option<Thread>, String>> {
    let store = &intake.store;
    let token = gateway_recipients(intake, envelope)
        .find_map(|r| r.plus_tag().and_then(ThreadId::from_plus_tag));
    if let Some(id) = token {
        return Ok(store.thread(&id).await?.ok_or(id.to_string()).map(Some));
    }
    let parents = envelope.parent_ids();
    if !parents.is_empty()
        && let Some(id) = store.find_thread_by_message_ids(&parents).await?
    {
        return Ok(Ok(store.thread(&ThreadId::parse(&id)?).await?));
    }
    if let Some(id) = ThreadId::from_subject(&envelope.subject) {
        return Ok(store.thread(&id).await?.ok_or(id.to_string()).map(Some));
    }
    Ok(Ok(None))
}

/// `Demande précédente : TE-2026-000042` (or `Suite de …`) links a new request to a closed one.
pub fn previous_thread(text: &str) -> Option<ThreadId> {
    text.lines().find_map(|l| {
        let folded = form::fold_label(l);
        if folded.starts_with("demande precedente") || folded.starts_with("suite de") {
            let written = l.split(':').nth(1).unwrap_or(l).trim();
            ThreadId::from_subject(&format!("[{}]", written.trim_matches(['[', ']'])))
        } else {
            None
        }
    })
}
