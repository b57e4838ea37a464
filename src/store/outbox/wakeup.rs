//! What starts a worker looking: PostgreSQL's `NOTIFY` after a commit that queued mail, the
//! due time of the next retry, and, on SQLite at start, claims a dead run left behind (see
//! the parent module's documentation).

use chrono::{DateTime, Utc};
use tracing::info;

use super::super::error::Ctx;
use super::super::{Backend, Result, Store, StoreError, ts};

/// The PostgreSQL notification channel that says "a row was queued".
pub const OUTBOX_CHANNEL: &str = "teleavis_outbox";

/// A PostgreSQL session listening on [`OUTBOX_CHANNEL`].
pub struct OutboxListener(sqlx::postgres::PgListener);

impl OutboxListener {
    /// Waits for the next notification. `Ok(false)` when the session was lost and has just been
    /// re-established: notifications may have been missed, so the caller should look anyway.
    pub async fn next(&mut self) -> Result<bool> {
        let got = self
            .0
            .try_recv()
            .await
            .ctx("waiting for outbox notifications")?;
        Ok(got.is_some())
    }
}

impl Store {
    /// Frees every claim. Only for SQLite at daemon start: one instance by design, so any claim
    /// left was made by a process that is gone. Returns how many were freed.
    pub async fn release_all_claims(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by IS NOT NULL OR claimed_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await
        .ctx("freeing the claims of a previous run")?;
        let n = done.rows_affected();
        if n > 0 {
            info!(count = n, "claims of a previous run freed");
        }
        Ok(n)
    }

    /// When the next pending row falls due strictly after `now` (its retry time, or the end of
    /// its claim), if any: the outbox sleeps until then. Rows due already but not claimable
    /// (waiting behind an earlier message of their thread) are left to the wake-up of the send
    /// that unblocks them.
    pub async fn next_due_after(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT MIN(due) FROM (SELECT CASE WHEN claimed_until IS NOT NULL \
             AND claimed_until > next_attempt_at THEN claimed_until ELSE next_attempt_at END \
             AS due FROM outbox WHERE status = 'pending') AS d WHERE due > $1",
        )
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await
        .ctx("finding the next due outgoing message")?;
        parse_due(next)
    }

    /// A session listening for queued rows (PostgreSQL; `None` on SQLite, where the daemon
    /// wakes its own workers after each commit).
    pub async fn outbox_listener(&self) -> Result<Option<OutboxListener>> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(|source| StoreError::Connect {
                backend: self.backend,
                url: super::super::redact_url(&self.url),
                source,
            })?;
        listener
            .listen(OUTBOX_CHANNEL)
            .await
            .ctx("listening for outbox notifications")?;
        Ok(Some(OutboxListener(listener)))
    }
}

/// A due time as the queries above return it (`None`: nothing pending).
pub(super) fn parse_due(at: Option<String>) -> Result<Option<DateTime<Utc>>> {
    at.map(|t| {
        super::super::parse_ts(&t).map_err(|e| StoreError::Corrupt {
            column: "outbox.next_attempt_at",
            detail: e.to_string(),
        })
    })
    .transpose()
}
