//! Claiming a due row ([`Store::claim`]): the one `UPDATE … RETURNING`
//! per backend that takes a row and, beside it, tells the worker what to do after it (see the
//! parent module's documentation).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::debug;

use super::super::blobs::{self, Blob};
use super::super::error::Ctx;
use super::super::{Backend, Result, Store, StoreError, col, ts};
use super::{OutboxRow, outbox_from_row, wakeup};

/// A claimed row, and what the claim saw of the rest of the queue at that instant.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub row: OutboxRow,
    /// Another row was claimable too: claim again after this one.
    pub more_due: bool,
    /// When the next pending row other than this one falls due after the claim, if any (as
    /// [`Store::next_due_after`] would say once this row is sent).
    pub next_due: Option<DateTime<Utc>>,
}

// The claimer is gone: no session of this database holds its liveness lock
// (store/lease.rs, CLAIM_LOCK_SPACE = 0x74656c65).
macro_rules! pg_claimer_gone {
    () => {
        concat!(
            "OR NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted ",
            "AND l.objsubid = 2 AND l.classid::bigint = 1952803941 ",
            "AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()) ",
            "AND l.objid::bigint = (hashtext(o.claimed_by)::bigint & 4294967295))) "
        )
    };
}

/// What a claim returns beside the row, so that the common case costs one statement, not
/// three: its first chunk of bytes (`chunk0`), when the next pending row other than this one
/// falls due after now (`next_due`, as `next_due_after`), and, closing with the caller's
/// subquery, whether another row is claimable now (`more_due`): after sending this one the
/// worker claims again only then.
macro_rules! claim_extras {
    () => {
        concat!(
            ", (SELECT r.bytes FROM outbox_raw r WHERE r.outbox_id = outbox.id AND r.seq = 0) ",
            "AS chunk0, (SELECT MIN(CASE WHEN o.claimed_until > o.next_attempt_at ",
            "THEN o.claimed_until ELSE o.next_attempt_at END) FROM outbox o ",
            "WHERE o.status = 'pending' AND o.id <> outbox.id ",
            "AND (o.next_attempt_at > $3 OR o.claimed_until > $3)) AS next_due, ",
            "CAST(CASE WHEN EXISTS "
        )
    };
}

/// The end of `more_due`: the claimable row is not waiting behind an earlier pending message
/// of its thread to the same recipients, the claimed row aside (it is being sent: what waits
/// behind it only is claimable once it is).
macro_rules! more_unblocked {
    () => {
        concat!(
            "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.thread_id = o.thread_id ",
            "AND e.recipients = o.recipients AND e.id < o.id AND e.status = 'pending' ",
            "AND e.id <> outbox.id)) THEN 1 ELSE 0 END AS BIGINT) AS more_due"
        )
    };
}

const CLAIM_POSTGRES: &str = concat!(
    "UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = (",
    "SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $3 ",
    "AND (o.claimed_until IS NULL OR o.claimed_until <= $3 ",
    pg_claimer_gone!(),
    // Mail about one thread reaches each recipient in the order it was queued (the forward
    // before the expert's note, the answer before the compte-rendu), whatever the number of
    // workers; a recipient whose server is down delays no one else.
    "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.thread_id = o.thread_id ",
    "AND e.recipients = o.recipients AND e.id < o.id AND e.status = 'pending') ",
    "ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING ",
    outbox_cols!(),
    claim_extras!(),
    // More: another row claimable now, by the same rules.
    "(SELECT 1 FROM outbox o WHERE o.id <> outbox.id AND o.status = 'pending' ",
    "AND o.next_attempt_at <= $3 AND (o.claimed_until IS NULL OR o.claimed_until <= $3 ",
    pg_claimer_gone!(),
    more_unblocked!(),
);

const CLAIM_SQLITE: &str = concat!(
    "UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = (",
    "SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= $3 ",
    "AND (o.claimed_until IS NULL OR o.claimed_until <= $3) ",
    // Mail about one thread reaches each recipient in the order it was queued (the forward
    // before the expert's note, the answer before the compte-rendu), whatever the number of
    // workers; a recipient whose server is down delays no one else.
    "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.thread_id = o.thread_id ",
    "AND e.recipients = o.recipients AND e.id < o.id AND e.status = 'pending') ",
    "ORDER BY o.next_attempt_at, o.id LIMIT 1) RETURNING ",
    outbox_cols!(),
    claim_extras!(),
    "(SELECT 1 FROM outbox o WHERE o.id <> outbox.id AND o.status = 'pending' ",
    "AND o.next_attempt_at <= $3 AND (o.claimed_until IS NULL OR o.claimed_until <= $3) ",
    more_unblocked!(),
);

impl Store {
    /// [`Store::claim`], the row alone (the tests of claiming rules).
    #[cfg(test)]
    pub(crate) async fn claim_due(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<OutboxRow>> {
        Ok(self.claim(now, worker, lease).await?.map(|c| c.row))
    }

    /// Claims one due row for `worker` until `now + lease`, or `None` if nothing is due, with
    /// what the worker needs to know next (see [`Claimed`]). Runs in its own (autocommit)
    /// statement; see the parent module's documentation.
    pub async fn claim(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claimed>> {
        let lease = chrono::Duration::from_std(lease).map_err(|e| StoreError::Invalid {
            what: "claim lease",
            detail: e.to_string(),
        })?;
        let sql = match self.backend {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let Some(found) = sqlx::query(sql)
            .bind(worker)
            .bind(ts(now + lease))
            .bind(ts(now))
            .fetch_optional(&self.pool)
            .await
            .ctx("claiming a due outgoing message")?
        else {
            return Ok(None);
        };
        let mut row = outbox_from_row(&found)?;
        let chunk0: Option<Vec<u8>> = col(&found, "chunk0")?;
        let more: i64 = col(&found, "more_due")?;
        let next_due = wakeup::parse_due(col(&found, "next_due")?)?;
        drop(found);
        if let Some(first) = chunk0 {
            // A message of one chunk (nearly all) is read; a longer one continues from there.
            row.raw = blobs::get_after(&self.pool, Blob::Outbox, row.id, first).await?;
        }
        debug!(
            outbox_id = row.id,
            worker,
            attempts = row.attempts,
            "outgoing message claimed"
        );
        Ok(Some(Claimed {
            row,
            more_due: more != 0,
            next_due,
        }))
    }
}
