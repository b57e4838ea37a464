//! Replay protection, hooked into the pipeline right after authentication: a message whose
//! author's signature was already accepted is a `duplicate` of the first one (moved to the
//! processed folder, nothing sent, an audit row); an accepted message's signature is recorded
//! in its own transaction, so a crash loses both or neither.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Handled, Intake, Outcome};
use crate::smime::Authenticated;
use crate::store::{AcceptedSignature, InboundOutcome, Tx, outcome};

/// Records the signature of a message the workflow processed.
pub(super) async fn record_accepted(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    msg: &Authenticated,
    thread: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let accepted = AcceptedSignature {
        inbound_id,
        thread_id: thread.map(str::to_string),
        signer: msg.signer.email.to_string(),
        accepted_at: now,
    };
    let inserted = intake
        .store
        .record_accepted_signature(tx, &msg.signature_digest, &accepted)
        .await?;
    // Only a concurrent copy committed first can get here (the lookup ran in this
    // transaction): refuse this one rather than act twice.
    anyhow::ensure!(
        inserted,
        "the same signature was accepted concurrently by another message"
    );
    Ok(())
}

/// Marks `inbound_id` as a replay of inbound `of`.
pub(super) async fn record_duplicate(
    intake: &Intake,
    tx: &mut Tx,
    inbound_id: i64,
    of: i64,
    thread: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Handled> {
    let destination = intake.processed_folder();
    let detail = format!("same signature as inbound {of} (replayed copy)");
    intake
        .store
        .set_inbound_outcome(
            tx,
            inbound_id,
            &InboundOutcome {
                outcome: outcome::DUPLICATE,
                reason: None,
                detail: Some(&detail),
                thread_id: thread,
                destination: Some(&destination),
            },
        )
        .await?;
    intake
        .store
        .append_audit(
            tx,
            "intake",
            "inbound.duplicate",
            &format!("inbound:{inbound_id}"),
            &serde_json::json!({"of": of, "by": "signature", "thread": thread}),
            now,
        )
        .await?;
    info!(inbound_id, of, "replayed signature: duplicate");
    Ok(Handled {
        inbound_id,
        destination,
        outcome: Outcome::Duplicate { of },
    })
}
