//! The stages before authentication: the same mail twice, size, headers, loops and bounces.
//! Each stops the message (`Stage`) or lets it through; none reads the body.

use tracing::info;

use super::stage::{MessageCtx, Stage, decided, quarantine};
use super::{Decision, Envelope, Intake, Reason, SameAs, bounce};
use crate::address::EmailAddress;
use crate::outbox;
use crate::store::{InboundStatus, OutboxKind, Tx};

/// Same Message-ID, other bytes: the same mail delivered twice (two recipients, a resend).
pub async fn same_message_id(
    intake: &Intake,
    inbound_id: i64,
    envelope: Option<&Envelope>,
) -> Stage<()> {
    let Some(mid) = envelope.and_then(|e| e.message_id.as_deref()) else {
        return Ok(());
    };
    let earlier = intake.store.find_inbound_by_message_id(mid).await?;
    // Only a message that was handled counts: a forged copy sent first and quarantined must
    // not silence the genuine one.
    match earlier
        .into_iter()
        .find(|p| p.id != inbound_id && p.outcome == InboundStatus::Processed)
    {
        Some(prev) => {
            info!(of = prev.id, "duplicate Message-ID");
            decided(Decision::Duplicate {
                of: prev.id,
                thread: prev.thread_id,
                same: SameAs::MessageId,
            })
        }
        None => Ok(()),
    }
}

pub fn size(intake: &Intake, raw: &[u8]) -> Stage<()> {
    if raw.len() as u64 > intake.settings.limits.max_message_bytes {
        return quarantine(
            Reason::Oversized,
            format!("{} bytes > limits.max_message_bytes", raw.len()),
        );
    }
    Ok(())
}

pub fn headers(envelope: Option<&Envelope>) -> Stage<&Envelope> {
    match envelope {
        Some(e) => Ok(e),
        None => quarantine(Reason::Malformed, "not an RFC 5322 message"),
    }
}

/// RFC 3834: automatic mail is never answered. A bounce of the gateway's own mail fails the
/// outbox rows it names (and tells the admin) before it goes to quarantine.
pub async fn automatic(intake: &Intake, cx: &mut MessageCtx<'_>, raw: &[u8]) -> Stage<()> {
    if !is_automatic(cx.envelope) {
        return Ok(());
    }
    if let Some(b) = bounce::read(raw, intake.settings.gateway.address.domain()) {
        record_bounce(intake, cx.tx, cx.inbound_id, &b, cx.now).await?;
    }
    quarantine(
        Reason::Automatic,
        "automatic message (RFC 3834 headers, bounce or list)",
    )
}

/// The From address, when there is one and it is not the gateway itself.
pub fn sender(intake: &Intake, envelope: &Envelope) -> Stage<EmailAddress> {
    let Some(from) = envelope.from.clone() else {
        return quarantine(Reason::Malformed, "no usable From address");
    };
    if from.base() == intake.settings.gateway.address.base() {
        return quarantine(Reason::Loop, "the gateway's own mail came back");
    }
    Ok(from)
}

/// A bounce of the gateway's own mail: the outbox rows it names are failed after all, and
/// the admin is told.
async fn record_bounce(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    b: &bounce::Bounce,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    for mid in &b.message_ids {
        let Some(row) = intake.store.find_outbox_by_message_id(mid).await? else {
            continue;
        };
        let reason = format!("bounced (inbound {inbound_id}): {}", b.diagnostic);
        if !intake.store.mark_bounced(tx, row.id, now, &reason).await?
            || row.kind == OutboxKind::AdminAlert
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
        let (s, thread) = (&intake.settings, row.thread_id.as_deref());
        outbox::alert_admin(&intake.store, tx, s, "Message en échec", text, thread, now).await?;
    }
    Ok(())
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
