//! Hook for the daemon (issue 12): a message whose IMAP `RFC822.SIZE` exceeds
//! `limits.max_message_bytes` is quarantined from its headers alone, its body never downloaded.
//! Kept apart from the pipeline so the pipeline can change without touching it.

use chrono::Utc;

use super::{Decision, Envelope, Fetched, Handled, Intake, Reason, new_inbound, sha256_hex};

impl Intake {
    /// Records `headers` (the header block, as fetched alone) of a message of `size` bytes as
    /// quarantined `oversized`, with the admin alerted, in one transaction. The stored raw is
    /// the headers only; `size` is the message's. A copy met again (crash before the MOVE) is
    /// only moved again.
    pub async fn quarantine_oversized(
        &self,
        headers: Fetched,
        size: u64,
    ) -> anyhow::Result<Handled> {
        let now = Utc::now();
        let sha = sha256_hex(&headers.raw);
        if let Some(prev) = self.store.find_inbound_by_sha256(&sha).await? {
            return Ok(Handled {
                inbound_id: prev.id,
                destination: prev
                    .destination
                    .clone()
                    .unwrap_or_else(|| self.settings.imap.quarantine_mailbox.clone()),
                outcome: super::Outcome::Duplicate { of: prev.id },
            });
        }
        let envelope = Envelope::parse(&headers.raw);
        let mut new = new_inbound(&headers, envelope.as_ref(), &sha, now);
        new.size = size;
        let mut tx = self.store.begin().await?;
        let inbound_id = self.store.insert_inbound(&mut tx, &new).await?;
        let decision = Decision::Quarantined {
            reason: Reason::Oversized,
            detail: format!(
                "{size} bytes > limits.max_message_bytes = {} (RFC822.SIZE; body not downloaded)",
                self.settings.limits.max_message_bytes
            ),
        };
        let handled = self
            .record(&mut tx, inbound_id, envelope.as_ref(), decision, now)
            .await?;
        tx.commit().await?;
        Ok(handled)
    }
}
