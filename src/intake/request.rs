//! A new request: help when it names no category, the form parsed with its category's
//! template (refused with what to fix), else a thread opened and its actions run.

use chrono::Datelike;
use tracing::info;

use super::autoreply::{auto_reply, receipt};
use super::effects::{self, Applied, Cause};
use super::stage::{Message, MessageCtx, Stage};
use super::{Decision, Intake, notices};
use crate::catalogue::Category;
use crate::form;
use crate::mdn::Disposition;
use crate::store::{MessageKind, OutboxKind};
use crate::thread::{self, Role, Thread, ThreadId};

/// The list of categories and their blank forms, with why when the request named none.
pub async fn help(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    msg: &Message,
    why: Option<&str>,
) -> Stage<Decision> {
    let text = notices::help(&intake.settings, &intake.catalogue, why);
    auto_reply(intake, cx, &msg.signer().email, "Aide", text, None).await?;
    Ok(Decision::Processed { thread: None })
}

pub async fn open(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    msg: &Message,
    category: &Category,
    previous: Option<ThreadId>,
) -> Stage<Decision> {
    let from = &msg.signer().email;
    // Directory (issue 10): a requérant whose profession may not request is told so.
    let refusal = crate::directory::hooks::refuse_requester(
        &intake.store,
        cx.tx,
        &intake.settings,
        from.as_str(),
    )
    .await?;
    if let Some(text) = refusal {
        auto_reply(intake, cx, from, "Demande refusée", text, None).await?;
        info!("request refused: the directory's profession may not request");
        return Ok(Decision::Processed { thread: None });
    }
    let local_now = cx.now.with_timezone(&intake.catalogue.tz);
    let parsed = form::parse_form(
        &category.template,
        &msg.content.text,
        local_now.date_naive(),
    );
    let request = match parsed.to_request() {
        Ok(r) if parsed.is_valid() => r,
        refused => {
            let problems = match refused {
                Err(missing) if parsed.problems.is_empty() => missing,
                _ => parsed.problems.clone(),
            };
            let filled = parsed.filled_in(&category.template);
            let text = notices::form_problems(&intake.settings, category, &problems, &filled);
            auto_reply(intake, cx, from, "Demande incomplète", text, None).await?;
            // Hook (issue 11): the MDN the sender asked for, with the reason.
            let reason = format!(
                "demande incomplète ({} point(s) du formulaire à corriger)",
                problems.len()
            );
            receipt(intake, cx, from, Disposition::Error { reason }).await?;
            info!(problems = problems.len(), "request incomplete, sender told");
            return Ok(Decision::Processed { thread: None });
        }
    };

    let year = local_now.year();
    let seq = intake.store.next_thread_seq(cx.tx, year).await?;
    let outcome = thread::open();
    let signer = msg.signer();
    let t = Thread {
        id: ThreadId::new(year, u32::try_from(seq)?),
        status: outcome.status,
        category: category.id.clone(),
        requester: from.clone(),
        requester_name: signer.display_name.clone(),
        requester_rpps: signer.rpps.clone(),
        taken_by: None,
        form: request,
        previous,
        created_at: cx.now,
        updated_at: cx.now,
        closed_at: None,
    };
    let tid = t.id.to_string();
    tracing::Span::current().record("thread", tid.as_str());
    intake.store.open_thread(cx.tx, &t).await?;
    let c = &msg.content;
    effects::record_in(
        intake,
        cx,
        &tid,
        MessageKind::Request,
        msg,
        &c.text,
        &c.attachments,
    )
    .await?;
    let previous = t.previous.as_ref().map(ThreadId::to_string);
    let detail = serde_json::json!({"category": category.id, "inbound_id": cx.inbound_id, "previous": previous});
    intake
        .store
        .append_audit(cx.tx, from.as_str(), "thread.opened", &tid, &detail, cx.now)
        .await?;
    // Desk (issue 10): the deadline (standard or urgent line), stated in the acknowledgement.
    let gateway = intake.settings.gateway.address.base();
    let tags: Vec<String> = (cx.envelope.recipients.iter())
        .filter(|r| r.base() == gateway)
        .filter_map(|r| r.plus_tag().map(str::to_owned))
        .collect();
    let (deadline_line, urgent) = crate::desk::hooks::open_deadline(
        &intake.store,
        cx.tx,
        &intake.settings,
        category,
        &tid,
        &tags,
        &t.form.unlisted,
        cx.now,
    )
    .await?;
    let applied = Applied {
        thread: &t,
        category,
        previous_category: category,
        cause: Some(Cause {
            msg,
            envelope: cx.envelope,
            role: Role::Requester,
            text: &c.text,
        }),
        deadline_line: Some(&deadline_line),
    };
    effects::run(intake, cx.tx, cx.now, &applied, &outcome.actions).await?;
    // On thread opened: what else a new thread calls for goes here.
    // Desk (issue 10): a notice to each expert on duty in the category now, after the forward.
    let on_duty = crate::desk::hooks::on_duty_notices(
        &intake.store,
        cx.tx,
        &intake.settings,
        category,
        &tid,
        cx.now,
    )
    .await?;
    let word = if urgent { "URGENT" } else { "Nouvelle demande" };
    for (to, text) in on_duty {
        let subject = thread::subject(&t.id, &category.name, word);
        let m =
            crate::outbox::gateway_message(&intake.settings, vec![to], subject, text, Some(&tid));
        effects::send(intake, cx.tx, &tid, OutboxKind::Notice, m, cx.now).await?;
    }
    // Hook (issue 11): the MDN the sender asked for.
    let processed = Disposition::Processed {
        thread: tid.clone(),
    };
    receipt(intake, cx, from, processed).await?;
    info!(category = %category.id, "thread opened");
    Ok(Decision::Processed { thread: Some(tid) })
}
