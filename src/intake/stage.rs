//! What the stages pass along: `MessageCtx` (the message's transaction, inbound id, envelope
//! and clock), `Message` (its authenticated sender and readable content), and `Stage<T>`: a
//! stage hands its result to the next one, or stops the message with a `Decision`.

use chrono::{DateTime, Utc};

use super::content::Content;
use super::{Decision, Envelope, Reason};
use crate::smime::Authenticated;
use crate::store::Tx;

/// Why the stages stopped before the end: a decision about the message, or a failure (the
/// database, or a bug) that the caller sorts into "retry later" and `processing_error`.
pub enum Stop {
    Decided(Decision),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Stop {
    fn from(e: E) -> Stop {
        Stop::Failed(e.into())
    }
}

/// A stage's result: `Ok(next)` to go on, `Err(Stop::Decided(_))` when the message's fate is
/// known. `?` turns any error into `Stop::Failed`.
pub type Stage<T> = Result<T, Stop>;

/// Stops the message with this decision.
pub fn decided<T>(decision: Decision) -> Stage<T> {
    Err(Stop::Decided(decision))
}

/// Stops the message in quarantine.
pub fn quarantine<T>(reason: Reason, detail: impl Into<String>) -> Stage<T> {
    decided(Decision::Quarantined {
        reason,
        detail: detail.into(),
    })
}

/// One message in the stages after its headers were read: everything it causes is written
/// in `tx`, committed once at the end.
pub struct MessageCtx<'a> {
    pub tx: &'a mut Tx,
    pub inbound_id: i64,
    pub envelope: &'a Envelope,
    pub now: DateTime<Utc>,
}

/// A message whose sender is authenticated, with its readable content.
pub struct Message {
    /// The verified signer (`authenticated.signer`) and the innermost MIME entity.
    pub authenticated: Authenticated,
    pub content: Content,
}

impl Message {
    pub fn signer(&self) -> &crate::smime::SignerIdentity {
        &self.authenticated.signer
    }

    /// `Dr Ruch (RPPS 10001234567)`: how relays and notices name the author.
    pub fn author_line(&self) -> String {
        let s = self.signer();
        let name = s
            .display_name
            .clone()
            .unwrap_or_else(|| s.email.to_string());
        match &s.rpps {
            Some(r) => format!("{name} (RPPS {r})"),
            None => name,
        }
    }
}
