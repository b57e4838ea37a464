//! Desk (issue 10): the reminder at a thread's deadline (to its category's group and the
//! experts on duty then, one mail each) and the
//! escalation at twice the deadline (to the category's `escalation_address`), subject
//! `[TE-…] Relance — <catégorie>`. The daemon's tick reads what is due from the database; each
//! step is claimed, queued and audited in ONE transaction, so a restart neither repeats nor
//! skips one, and of several instances on one database only one sends it.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::effects;
use super::{Intake, notices};
use crate::address::EmailAddress;
use crate::desk::deadline::french_time;
use crate::store::{DeadlineStep, OutboxKind, PendingDeadline};
use crate::thread::{self, ThreadId};

/// How often the daemon looks for due reminders: well within 30 s of the deadline.
pub const TICK: std::time::Duration = std::time::Duration::from_secs(10);

/// Sends the reminders and escalations due at `now`. Returns how many were queued.
pub async fn tick(intake: &Intake, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut sent = 0;
    for pending in intake.store.pending_deadlines(now).await? {
        for step in pending.due_steps(now) {
            match send_step(intake, &pending, step, now).await {
                Ok(true) => sent += 1,
                Ok(false) => {}
                // One thread's trouble does not hold the others back; tried again next tick.
                Err(e) => warn!(
                    thread = %pending.thread_id,
                    error = %format!("{e:#}"),
                    "deadline reminder failed"
                ),
            }
        }
    }
    Ok(sent)
}

/// Claims, queues and audits one step; false when it was not (or no longer) to be sent.
async fn send_step(
    intake: &Intake,
    pending: &PendingDeadline,
    step: DeadlineStep,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let tid = pending.thread_id.as_str();
    let id = ThreadId::parse(tid)?;
    let Some(thread) = intake.store.thread(&id).await? else {
        return Ok(false);
    };
    let Some(category) = intake.catalogue.get(&thread.category) else {
        warn!(thread = %tid, "deadline of a thread whose category is no longer configured");
        return Ok(false);
    };
    let s = &intake.settings;
    let tz = intake.catalogue.tz;
    let due = french_time(pending.deadline_at, tz);
    let (to, text, action): (EmailAddress, String, &str) = match step {
        DeadlineStep::Reminder => (
            category.group_address.clone(),
            notices::reminder(s, &id, category, &due),
            "thread.reminder",
        ),
        DeadlineStep::Escalation => (
            category.escalation_address.clone(),
            notices::escalation(s, &id, category, &due, &french_time(pending.opened_at, tz)),
            "thread.escalation",
        ),
    };
    let mut tx = intake.store.begin().await?;
    if !intake
        .store
        .claim_deadline_step(&mut tx, tid, step, now)
        .await?
    {
        tx.rollback().await?;
        return Ok(false);
    }
    let mut recipients = vec![to];
    if step == DeadlineStep::Reminder {
        // The experts on duty in the category now, as for the on-duty notice.
        let slots = (intake.store)
            .roster_slots(&mut tx, Some(&category.id), Some(now))
            .await?;
        for slot in slots {
            if let Ok(a) = EmailAddress::parse(&slot.expert)
                && !recipients.iter().any(|r| r.base() == a.base())
            {
                recipients.push(a);
            }
        }
    }
    for r in &recipients {
        let subject = thread::subject(&id, &category.name, "Relance");
        let m =
            crate::outbox::gateway_message(s, vec![r.clone()], subject, text.clone(), Some(tid));
        effects::send(intake, &mut tx, tid, OutboxKind::Reminder, m, now).await?;
    }
    let detail = serde_json::json!({
        "to": recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "deadline_at": pending.deadline_at.to_rfc3339(),
    });
    intake
        .store
        .append_audit(&mut tx, "gateway", action, tid, &detail, now)
        .await?;
    tx.commit().await?;
    info!(thread = %tid, step = action, "deadline follow-up queued");
    Ok(true)
}
