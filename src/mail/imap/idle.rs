//! Waiting for new mail: IDLE, or a sleep and a NOOP on servers without it.

use std::time::Duration;

use async_imap::types::UnsolicitedResponse;

use crate::mail::MailError;

use super::{Ctx, IdleOutcome, ImapClient, limited};

impl ImapClient {
    /// Waits in IDLE up to `timeout` for a change in the selected mailbox. New mail the server
    /// reported during earlier commands counts too (no wake-up is lost between a search and the
    /// IDLE). The session is handed back, as async-imap's IDLE handle does; on error it is gone
    /// (reconnect). Without the IDLE capability this sleeps `timeout` and sends a NOOP, so pass
    /// the polling interval then.
    pub async fn idle_wait(
        mut self,
        timeout: Duration,
    ) -> Result<(ImapClient, IdleOutcome), MailError> {
        use async_imap::extensions::idle::IdleResponse;
        self.drain_unsolicited();
        if std::mem::take(&mut self.news) {
            return Ok((self, IdleOutcome::NewData));
        }
        if !self.has_idle() {
            tokio::time::sleep(timeout).await;
            self.noop().await?;
            let outcome = if std::mem::take(&mut self.news) {
                IdleOutcome::NewData
            } else {
                IdleOutcome::Timeout
            };
            return Ok((self, outcome));
        }
        let ImapClient {
            session,
            capabilities,
            host,
            port,
            news: _,
        } = self;
        let ctx = Ctx { host: &host, port };
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        limited(&ctx, "idle", handle.init()).await?;
        // New mail announced before the server's "+ idling" is queued, not seen by the wait.
        let mut early = false;
        while let Ok(r) = unsolicited.try_recv() {
            early |= matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        let outcome = if early {
            IdleOutcome::NewData
        } else {
            let (wait, _stop) = handle.wait_with_timeout(timeout);
            // The handle's own timeout restarts on every "* OK Still here"; bound the total.
            match tokio::time::timeout(timeout, wait).await {
                Err(_) => IdleOutcome::Timeout,
                Ok(Ok(IdleResponse::NewData(_))) => IdleOutcome::NewData,
                Ok(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) => {
                    IdleOutcome::Timeout
                }
                Ok(Err(e)) => return Err(ctx.err("idle", e)),
            }
        };
        let session = limited(&ctx, "idle done", handle.done()).await?;
        let mut client = ImapClient {
            session,
            capabilities,
            host: host.clone(),
            port,
            news: false,
        };
        // New mail reported with the DONE completion counts too.
        client.drain_unsolicited();
        let outcome = if std::mem::take(&mut client.news) {
            IdleOutcome::NewData
        } else {
            outcome
        };
        Ok((client, outcome))
    }
}
