//! One SMTP connection kept open across messages (one per outbox worker): reused after an
//! `RSET`, reopened on any error or after a while idle, closed with `QUIT` at shutdown.
//!
//! Reuse only saves the connection set-up; what a message costs and how failures are
//! classified is `smtp.rs`'s. A reused connection the server has silently closed shows at the
//! `RSET`, before anything of the message is sent, so it is reopened at no risk to the message.
//! Every message still ends within 3 × `timeout_seconds` (the `RSET`, a reopen and the
//! message share one [`Limits`]), which the outbox claim lease relies on.

use std::time::Duration;

use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::Rset;
use tokio::time::Instant;

use super::smtp::{Limits, SendError, SmtpSender, prepare, within};

/// A kept connection older than this (since its last message) is not reused: servers close
/// idle sessions (Postfix after 300 s), and a fresh one is cheaper than a failed `RSET`.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// An [`SmtpSender`] that keeps its connection between messages.
pub struct SmtpSession {
    sender: SmtpSender,
    kept: Option<(AsyncSmtpConnection, Instant)>,
}

impl SmtpSession {
    pub fn new(sender: SmtpSender) -> SmtpSession {
        SmtpSession { sender, kept: None }
    }

    /// Whether a connection is open (for tests and logs).
    pub fn is_connected(&self) -> bool {
        self.kept.is_some()
    }

    /// Like [`SmtpSender::send_raw`], on the kept connection when it still answers `RSET`.
    pub async fn send_raw(
        &mut self,
        envelope_from: &str,
        recipients: &[String],
        raw: &[u8],
    ) -> Result<(), SendError> {
        let (envelope, body) = prepare(envelope_from, recipients, raw)?;
        let limits = Limits::new(self.sender.timeout());
        let mut conn = match self.reusable(&limits).await {
            Some(conn) => conn,
            None => self
                .sender
                .open(&limits)
                .await
                .map_err(|f| self.sender.classify(f))?,
        };
        let limit = self.sender.message_limit(&limits, body.len());
        match within("send", limit, conn.send(&envelope, &body)).await {
            Ok(_) => {
                self.kept = Some((conn, Instant::now()));
                Ok(())
            }
            // On an SMTP error lettre has already sent QUIT; on a timeout the connection is
            // dropped here. Either way the next message opens a new one.
            Err(f) => Err(self.sender.classify(f)),
        }
    }

    /// The kept connection, reset, or `None` (then a new one is opened).
    async fn reusable(&mut self, limits: &Limits) -> Option<AsyncSmtpConnection> {
        let (mut conn, since) = self.kept.take()?;
        if since.elapsed() > MAX_IDLE || conn.has_broken() {
            let _ = tokio::time::timeout(limits.step(), conn.abort()).await;
            return None;
        }
        match within("rset", limits.step(), conn.command(Rset)).await {
            Ok(_) => Some(conn),
            Err(_) => {
                tracing::debug!("smtp: kept connection no longer answers, reconnecting");
                None
            }
        }
    }

    /// Says `QUIT` on the kept connection, if any (shutdown).
    pub async fn close(&mut self) {
        if let Some((mut conn, _)) = self.kept.take() {
            let _ = tokio::time::timeout(self.sender.timeout(), conn.abort()).await;
        }
    }
}
