//! A message in a thread: the transition table decides (or refuses, and the sender is told),
//! the message is recorded, the thread updated, and the decided actions run.

use tracing::info;

use super::autoreply::auto_reply;
use super::classify::InThread;
use super::effects::{self, Applied, Cause};
use super::stage::{Message, MessageCtx, Stage, quarantine};
use super::{Decision, Intake, Reason, notices};
use crate::store::MessageKind;
use crate::thread::{self, Categories, Command, Refusal, Role};

pub async fn apply(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    msg: &Message,
    it: InThread<'_>,
) -> Stage<Decision> {
    let tid = it.thread.id.to_string();
    tracing::Span::current().record("thread", tid.as_str());
    let known = intake.catalogue.ids();
    let categories = Categories {
        current: &it.category.id,
        known: &known,
    };
    let outcome = match thread::apply(it.thread.status, it.role, &it.event, &categories) {
        Ok(o) => o,
        Err(refusal) => return refuse(intake, cx, msg, &it, refusal).await,
    };
    // Desk (issue 10): an accepted expert's answer, #prendre, #clore or #annuler stops the
    // deadline (a #transferer gives the new category the time left).
    if !matches!(it.command, Some(Command::Transferer(_))) {
        let cancelled = matches!(it.command, Some(Command::Annuler));
        crate::desk::hooks::stop_deadline(&intake.store, cx.tx, &tid, it.role, cancelled, cx.now)
            .await?;
    }
    let kind = match (&it.command, it.role) {
        // The final answer of `#clore` is an answer (stats count the first answer's time).
        (Some(Command::Clore), _) if !it.text.trim().is_empty() => MessageKind::Answer,
        (Some(_), _) => MessageKind::Command,
        (None, Role::Requester) => MessageKind::FollowUp,
        (None, _) => MessageKind::Answer,
    };
    let atts = &msg.content.attachments;
    effects::record_in(intake, cx, &tid, kind, msg, &it.text, atts).await?;
    let from = &msg.signer().email;
    let after = it.thread.after(&outcome, from, cx.now);
    let category = intake.catalogue.get(&after.category).unwrap_or(it.category);
    intake.store.save_thread(cx.tx, &after).await?;
    let detail = serde_json::json!({
        "from_status": it.thread.status.as_str(),
        "to_status": after.status.as_str(),
        "command": it.command.as_ref().map(|c| c.name()),
        "category": category.id,
        "inbound_id": cx.inbound_id,
    });
    let action = format!("thread.{kind}");
    intake
        .store
        .append_audit(cx.tx, from.as_str(), &action, &tid, &detail, cx.now)
        .await?;
    let applied = Applied {
        thread: &after,
        category,
        previous_category: it.category,
        cause: Some(Cause {
            msg,
            envelope: cx.envelope,
            role: it.role,
            text: &it.text,
        }),
        deadline_line: None,
    };
    effects::run(intake, cx.tx, cx.now, &applied, &outcome.actions).await?;
    info!(%kind, to_status = after.status.as_str(), "thread updated");
    Ok(Decision::Processed { thread: Some(tid) })
}

/// The sender is told why; a stranger's message is quarantined, never relayed.
async fn refuse(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    msg: &Message,
    it: &InThread<'_>,
    refusal: Refusal,
) -> Stage<Decision> {
    let s = &intake.settings;
    let from = &msg.signer().email;
    let id = &it.thread.id;
    let tid = id.to_string();
    match refusal {
        Refusal::NotAuthorized => {
            let text = notices::not_authorized(s, id);
            auto_reply(intake, cx, from, "Message non transmis", text, None).await?;
            quarantine(
                Reason::NotAuthorized,
                format!("{from} is not a participant of {tid}"),
            )
        }
        Refusal::Closed(status) => {
            let text = notices::closed(s, id, status, it.category);
            auto_reply(intake, cx, from, "Demande close", text, Some(&tid)).await?;
            effects::record_in(intake, cx, &tid, MessageKind::Notice, msg, &it.text, &[]).await?;
            Ok(Decision::Processed { thread: Some(tid) })
        }
        refusal => {
            let mut why = refusal.to_string();
            if matches!(refusal, Refusal::UnknownCategory(_)) {
                // Say which ids `#transferer` takes.
                let list: Vec<String> = intake
                    .catalogue
                    .iter()
                    .map(|c| format!("{} ({})", c.id, c.name))
                    .collect();
                why.push_str(&format!(" ; catégories : {}", list.join(", ")));
            }
            let text = notices::refused(s, id, &why);
            auto_reply(intake, cx, from, "Commande refusée", text, Some(&tid)).await?;
            Ok(Decision::Processed { thread: Some(tid) })
        }
    }
}
