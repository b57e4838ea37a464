//! Replay protection, the stage right after authentication: a message whose author's
//! signature was already accepted is a `duplicate` of the first one (moved to the processed
//! folder, nothing sent, an audit row); an accepted message's signature is recorded in its own
//! transaction, so a crash loses both or neither.

use tracing::info;

use super::stage::{Message, MessageCtx, Stage, decided};
use super::{Decision, Intake, SameAs};
use crate::store::AcceptedSignature;

/// Stops a message whose innermost signature was accepted before (a replayed copy).
pub async fn check(intake: &Intake, cx: &mut MessageCtx<'_>, msg: &Message) -> Stage<()> {
    let digest = &msg.authenticated.signature_digest;
    match intake.store.find_accepted_signature(cx.tx, digest).await? {
        Some(first) => {
            info!(of = first.inbound_id, "replayed signature");
            decided(Decision::Duplicate {
                of: first.inbound_id,
                thread: first.thread_id,
                same: SameAs::Signature,
            })
        }
        None => Ok(()),
    }
}

/// Records the signature of a message the stages processed; other decisions record nothing
/// (a quarantined message may be reprocessed, and must not then count as its own copy).
pub async fn record(
    intake: &Intake,
    cx: &mut MessageCtx<'_>,
    msg: &Message,
    decision: &Decision,
) -> anyhow::Result<()> {
    let Decision::Processed { thread } = decision else {
        return Ok(());
    };
    let accepted = AcceptedSignature {
        inbound_id: cx.inbound_id,
        thread_id: thread.clone(),
        signer: msg.signer().email.to_string(),
        accepted_at: cx.now,
    };
    let digest = &msg.authenticated.signature_digest;
    let inserted = intake
        .store
        .record_accepted_signature(cx.tx, digest, &accepted)
        .await?;
    // Only a concurrent copy committed first can get here (the lookup ran in this
    // transaction): refuse this one rather than act twice.
    anyhow::ensure!(
        inserted,
        "the same signature was accepted concurrently by another message"
    );
    Ok(())
}
