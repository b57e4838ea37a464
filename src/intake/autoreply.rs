//! Automatic replies to a sender (help, refusals, notices about their message), within the
//! per-sender rate limit of RFC 3834.

use tracing::warn;

use super::Intake;
use super::stage::MessageCtx;
use crate::address::EmailAddress;
use crate::store::OutboxKind;

/// Queues an automatic reply to `to` about the message in hand, subject `[TE-…] <word>` or
/// `Téléexpertise — <word>`. Returns whether it was queued (the rate limit may suppress it).
pub async fn auto_reply(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    to: &EmailAddress,
    word: &str,
    text: String,
    thread: Option<&str>,
) -> anyhow::Result<bool> {
    let since = cx.now - chrono::Duration::hours(1);
    let sent = intake.store.count_auto_replies_since(to, since).await?;
    if sent >= i64::from(intake.settings.gateway.auto_reply_per_hour) {
        warn!(to = %to, "automatic reply suppressed by the rate limit");
        return Ok(false);
    }
    let subject = match thread {
        Some(t) => format!("[{t}] {word}"),
        None => format!("Téléexpertise — {word}"),
    };
    let mut m =
        crate::outbox::gateway_message(&intake.settings, vec![to.clone()], subject, text, thread);
    if let Some(mid) = &cx.envelope.message_id {
        m.in_reply_to = Some(mid.clone());
        m.references = vec![mid.clone()];
    }
    intake.store.record_auto_reply(cx.tx, to, cx.now).await?;
    crate::outbox::enqueue(
        &intake.store,
        cx.tx,
        &intake.settings,
        OutboxKind::Notice,
        &m,
        cx.now,
    )
    .await?;
    Ok(true)
}
