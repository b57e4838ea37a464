//! The send queue: enqueue with a stable Message-ID, claim due rows, record each attempt.
//!
//! **Message-ID.** It is derived from the row: `<teleavis.{id}.{created_unix}@{domain}>`.
//! [`Store::enqueue`] inserts the row with the id its table gives next and the Message-ID made
//! of it, calls the caller's `build` closure with that Message-ID to produce the cleartext
//! RFC 5322 message (which must carry it as its header), and stores the body in the same
//! transaction. What is sent is always the stored `raw`, so a resend
//! after a crash repeats the same bytes and the same Message-ID.
//!
//! **Claiming.** [`Store::claim`] takes one due row (`pending`, `next_attempt_at <= now`,
//! unclaimed or claim expired) in a single `UPDATE … RETURNING`: on PostgreSQL the row is picked
//! by a `FOR UPDATE SKIP LOCKED` subquery, so concurrent workers never wait on or share a row;
//! on SQLite the statement runs under the database write lock. A claim is a lease: a worker that
//! dies leaves the row claimable again once `claimed_until` passes. Delivery is therefore at
//! least once. Faster than the lease, a claim dies with its holder: on SQLite (one instance by
//! design) the daemon frees every claim at start ([`Store::release_all_claims`]); on
//! PostgreSQL a row whose claimer holds no liveness lock (`ClaimHolder`, `store/lease.rs`) is
//! free at once. Within one live holder the lease still keeps two workers off one row.
//!
//! **Waking.** On PostgreSQL, [`Store::enqueue`] issues `NOTIFY teleavis_outbox` in the
//! caller's transaction: PostgreSQL delivers it at commit, to every instance listening
//! ([`Store::outbox_listener`]), never for a rolled back row. [`Store::next_due_after`] tells
//! a worker when the next retry falls due, so it sleeps until then rather than polling.
//!
//! **Recording.** `mark_retry`, `mark_failed` and `mark_held` only apply to a row still
//! `pending`, and `mark_sent` to a row not already `sent`: a slow worker whose claim expired can
//! never turn a row another worker sent back into `pending`. They return whether the row changed.
//! `attempts` counts delivery attempts (retry, sent and failed each add one).

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};
use tracing::{debug, info, warn};

use super::blobs::{self, Blob};
use super::error::Ctx;

mod wakeup;

use super::{
    Backend, OutboxKind, Result, Store, StoreError, col, col_parsed, col_ts, col_ts_opt, join_list,
    normalize_message_id, split_list, ts,
};
pub use wakeup::{OUTBOX_CHANNEL, OutboxListener};

/// State of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Waiting to be sent (possibly after a failed attempt).
    Pending,
    /// Not sendable as is (no certificate for a recipient); see [`Store::release_held`].
    Held,
    /// Accepted by the SMTP server.
    Sent,
    /// Given up after the retry window; reported to the administrator.
    Failed,
}

impl OutboxStatus {
    /// The text kept in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Held => "held",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(OutboxStatus::Pending),
            "held" => Ok(OutboxStatus::Held),
            "sent" => Ok(OutboxStatus::Sent),
            "failed" => Ok(OutboxStatus::Failed),
            other => Err(StoreError::Corrupt {
                column: "outbox.status",
                detail: format!("unknown status `{other}`"),
            }),
        }
    }
}

/// A message to queue (its body is built by the closure given to [`Store::enqueue`]).
#[derive(Debug, Clone)]
pub struct NewOutgoing {
    /// Thread it is about, if any.
    pub thread_id: Option<String>,
    /// What it is.
    pub kind: OutboxKind,
    /// SMTP envelope sender.
    pub envelope_from: String,
    /// SMTP envelope recipients (no commas inside an address).
    pub recipients: Vec<String>,
}

/// What [`Store::enqueue`] gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Outbox row id.
    pub id: i64,
    /// The Message-ID the message carries, with angle brackets.
    pub message_id: String,
}

/// An outbox row.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Its Message-ID, with angle brackets.
    pub message_id: String,
    /// Thread it is about.
    pub thread_id: Option<String>,
    /// What it is.
    pub kind: OutboxKind,
    /// SMTP envelope sender.
    pub envelope_from: String,
    /// SMTP envelope recipients.
    pub recipients: Vec<String>,
    /// Cleartext RFC 5322 message; signed and encrypted when sent. Read (from `outbox_raw`) by
    /// [`Store::claim`] and [`Store::get_outbox`] only: empty in the rows of listings and
    /// lookups, which never need a message's bytes (a forward may be megabytes).
    pub raw: Vec<u8>,
    /// State.
    pub status: OutboxStatus,
    /// Delivery attempts made.
    pub attempts: i64,
    /// Not to be tried before.
    pub next_attempt_at: DateTime<Utc>,
    /// Claim expiry.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Worker holding the claim.
    pub claimed_by: Option<String>,
    /// Last SMTP error, or why it is held.
    pub last_error: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was given up.
    pub failed_at: Option<DateTime<Utc>>,
}

/// The Message-ID of outbox row `id` created at `created_at`:
/// `<teleavis.{id}.{created_unix}@{domain}>`. The creation second makes it unique even if a
/// database is recreated and ids start again.
pub fn outbox_message_id(id: i64, created_at: DateTime<Utc>, domain: &str) -> String {
    let (prefix, suffix) = message_id_affixes(created_at, domain);
    format!("{prefix}{id}{suffix}")
}

/// What comes before and after the id in [`outbox_message_id`] (the insert builds it in SQL).
fn message_id_affixes(created_at: DateTime<Utc>, domain: &str) -> (&'static str, String) {
    (
        "<teleavis.",
        format!(".{}@{domain}>", created_at.timestamp()),
    )
}

/// One status change of an outbox row: `sql` updates row `$1` under its guard, with `at` as
/// the next parameter and `text` after it (each only when given).
struct RowChange<'a> {
    sql: &'static str,
    at: Option<DateTime<Utc>>,
    text: Option<&'a str>,
    /// What the change is, for the error: "marking sent"…
    doing: &'static str,
}

/// The one way `mark_*` update a row; true when the guard let the change through.
async fn change_row(conn: &mut AnyConnection, id: i64, change: RowChange<'_>) -> Result<bool> {
    let mut query = sqlx::query(change.sql).bind(id);
    if let Some(at) = change.at {
        query = query.bind(ts(at));
    }
    if let Some(text) = change.text {
        query = query.bind(text);
    }
    let done = query
        .execute(&mut *conn)
        .await
        .with_ctx(|| format!("outgoing message #{id}: {}", change.doing))?;
    Ok(done.rows_affected() == 1)
}

macro_rules! outbox_cols {
    () => {
        "id, created_at, message_id, thread_id, kind, envelope_from, recipients, status, \
         attempts, next_attempt_at, claimed_until, claimed_by, last_error, sent_at, failed_at"
    };
}

mod claim;
pub use claim::Claimed;

fn outbox_from_row(row: &AnyRow) -> Result<OutboxRow> {
    let id: i64 = col(row, "id")?;
    let message_id: Option<String> = col(row, "message_id")?;
    let status: String = col(row, "status")?;
    let recipients: String = col(row, "recipients")?;
    Ok(OutboxRow {
        id,
        created_at: col_ts(row, "created_at")?,
        message_id: message_id.ok_or_else(|| StoreError::Corrupt {
            column: "outbox.message_id",
            detail: format!("row {id} has no Message-ID"),
        })?,
        thread_id: col(row, "thread_id")?,
        kind: col_parsed(row, "kind")?,
        envelope_from: col(row, "envelope_from")?,
        recipients: split_list(&recipients),
        raw: Vec::new(),
        status: status.parse()?,
        attempts: col(row, "attempts")?,
        next_attempt_at: col_ts(row, "next_attempt_at")?,
        claimed_until: col_ts_opt(row, "claimed_until")?,
        claimed_by: col(row, "claimed_by")?,
        last_error: col(row, "last_error")?,
        sent_at: col_ts_opt(row, "sent_at")?,
        failed_at: col_ts_opt(row, "failed_at")?,
    })
}

impl Store {
    /// Queues a message, due now. `build` receives the Message-ID (`<teleavis.…@domain>`) and
    /// returns the cleartext RFC 5322 message carrying it; its error aborts the enqueue
    /// ([`StoreError::Build`], the caller should roll back). See the module documentation.
    pub async fn enqueue<F, E>(
        &self,
        conn: &mut AnyConnection,
        new: &NewOutgoing,
        domain: &str,
        now: DateTime<Utc>,
        build: F,
    ) -> Result<Enqueued>
    where
        F: FnOnce(&str) -> std::result::Result<Vec<u8>, E>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if new.recipients.is_empty() {
            return Err(StoreError::Invalid {
                what: "outgoing message",
                detail: "no recipient".into(),
            });
        }
        let recipients = join_list("recipient list", &new.recipients)?;
        let created = ts(now);
        // The row takes the id its table would give it next, and the Message-ID made of it,
        // in one statement (under the write lock on SQLite, from the sequence on PostgreSQL).
        let next_id = match self.backend {
            Backend::Sqlite => {
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0) + 1"
            }
            Backend::Postgres => "SELECT nextval(pg_get_serial_sequence('outbox', 'id'))",
        };
        let (prefix, suffix) = message_id_affixes(now, domain);
        let id: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO outbox (id, message_id, created_at, thread_id, kind, envelope_from, \
             recipients, status, attempts, next_attempt_at) \
             SELECT n.id, $6 || n.id || $7, $1, $2, $3, $4, $5, 'pending', 0, $1 \
             FROM ({next_id} AS id) AS n RETURNING id"
        )))
        .bind(&created)
        .bind(&new.thread_id)
        .bind(new.kind.as_str())
        .bind(&new.envelope_from)
        .bind(&recipients)
        .bind(prefix)
        .bind(&suffix)
        .fetch_one(&mut *conn)
        .await
        .ctx("queueing an outgoing message")?;
        let message_id = outbox_message_id(id, now, domain);
        let raw = build(&message_id).map_err(|source| StoreError::Build {
            message_id: message_id.clone(),
            source: source.into(),
        })?;
        blobs::put(conn, Blob::Outbox, id, &raw).await?;
        if self.backend == Backend::Postgres {
            // Delivered at commit, to every instance (see the module documentation).
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(OUTBOX_CHANNEL)
                .execute(&mut *conn)
                .await
                .ctx("notifying the outbox workers")?;
        }
        debug!(outbox_id = id, %message_id, kind = %new.kind, "outgoing message queued");
        Ok(Enqueued { id, message_id })
    }

    /// Records a successful send. False if the row was already `sent` (or does not exist).
    pub async fn mark_sent(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let change = RowChange {
            sql: "UPDATE outbox SET status = 'sent', sent_at = $2, attempts = attempts + 1, \
                  claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND status <> 'sent'",
            at: Some(now),
            text: None,
            doing: "marking sent",
        };
        let changed = change_row(conn, id, change).await?;
        if changed {
            // The worker logs the send with its kind and thread; one line per message.
            debug!(outbox_id = id, "outgoing message sent");
        }
        Ok(changed)
    }

    /// Records a failed attempt to retry at `next_at`: attempts + 1, claim released.
    /// False if the row is no longer `pending`.
    pub async fn mark_retry(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let change = RowChange {
            sql: "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                  last_error = $3, claimed_by = NULL, claimed_until = NULL \
                  WHERE id = $1 AND status = 'pending'",
            at: Some(next_at),
            text: Some(error),
            doing: "scheduling a retry",
        };
        let changed = change_row(conn, id, change).await?;
        if changed {
            warn!(outbox_id = id, next_at = %ts(next_at), error, "outgoing message deferred");
        }
        Ok(changed)
    }

    /// Gives a row up (retry window exhausted or permanent error). False if not `pending`.
    pub async fn mark_failed(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let change = RowChange {
            sql: "UPDATE outbox SET status = 'failed', failed_at = $2, last_error = $3, \
                  attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL \
                  WHERE id = $1 AND status = 'pending'",
            at: Some(now),
            text: Some(error),
            doing: "marking failed",
        };
        let changed = change_row(conn, id, change).await?;
        if changed {
            warn!(outbox_id = id, error, "outgoing message failed");
        }
        Ok(changed)
    }

    /// Records a bounce (a delivery status notification naming this message) on a row the
    /// relay had accepted: it is failed after all. False if the row was not `sent`.
    pub async fn mark_bounced(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        let change = RowChange {
            sql: "UPDATE outbox SET status = 'failed', failed_at = $2, last_error = $3 \
                  WHERE id = $1 AND status = 'sent'",
            at: Some(now),
            text: Some(error),
            doing: "marking bounced",
        };
        let changed = change_row(conn, id, change).await?;
        if changed {
            warn!(outbox_id = id, "outgoing message bounced");
        }
        Ok(changed)
    }

    /// Holds a row that cannot be sent as is (no certificate for a recipient); `reason` goes to
    /// `last_error`. False if not `pending`.
    pub async fn mark_held(&self, conn: &mut AnyConnection, id: i64, reason: &str) -> Result<bool> {
        let change = RowChange {
            sql: "UPDATE outbox SET status = 'held', last_error = $2, claimed_by = NULL, \
                  claimed_until = NULL WHERE id = $1 AND status = 'pending'",
            at: None,
            text: Some(reason),
            doing: "holding",
        };
        let changed = change_row(conn, id, change).await?;
        if changed {
            warn!(outbox_id = id, reason, "outgoing message held");
        }
        Ok(changed)
    }

    /// Puts every held row back in the queue (when certificates changed); rows still lacking a
    /// certificate are held again by the worker. Returns how many were released.
    pub async fn release_held(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL, claimed_until = NULL \
             WHERE status = 'held'",
        )
        .execute(&self.pool)
        .await
        .ctx("releasing held outgoing messages")?;
        let n = done.rows_affected();
        if n > 0 {
            info!(count = n, "held outgoing messages released");
        }
        Ok(n)
    }

    /// Rows in a given state, oldest first (without their bytes).
    pub async fn outbox_by_status(&self, status: OutboxStatus) -> Result<Vec<OutboxRow>> {
        sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE status = $1 ORDER BY id"
        ))
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await
        .ctx("listing outgoing messages")?
        .iter()
        .map(outbox_from_row)
        .collect()
    }

    /// One outbox row.
    pub async fn get_outbox(&self, id: i64) -> Result<Option<OutboxRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .with_ctx(|| format!("reading outgoing message #{id}"))?;
        match row.as_ref().map(outbox_from_row).transpose()? {
            Some(row) => Ok(Some(self.with_raw(row).await?)),
            None => Ok(None),
        }
    }

    /// The outbox row that carries this Message-ID (any form, normalised), without its bytes
    /// (bounces are matched with it).
    pub async fn find_outbox_by_message_id(&self, message_id: &str) -> Result<Option<OutboxRow>> {
        let Some(message_id) = normalize_message_id(message_id) else {
            return Ok(None);
        };
        sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE message_id = $1"
        ))
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await
        .ctx("looking up an outgoing message by Message-ID")?
        .as_ref()
        .map(outbox_from_row)
        .transpose()
    }

    /// `row` with its message bytes (`outbox_raw`, store/blobs.rs).
    async fn with_raw(&self, mut row: OutboxRow) -> Result<OutboxRow> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .with_ctx(|| format!("reading outgoing message #{}", row.id))?;
        row.raw = blobs::get(&mut conn, Blob::Outbox, row.id, 0).await?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::super::testutil::both;
    use super::super::{Store, parse_ts};
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_ts("2026-11-27T13:46:33.123Z").unwrap()
    }

    fn new_out(thread: Option<&str>) -> NewOutgoing {
        NewOutgoing {
            thread_id: thread.map(str::to_owned),
            kind: OutboxKind::Ack,
            envelope_from: "teleexpertise@chr.mssante.fr".into(),
            recipients: vec!["dr.a@b.mssante.fr".into(), "c@d.mssante.fr".into()],
        }
    }

    async fn enqueue_one(store: &Store, at: DateTime<Utc>) -> Enqueued {
        enqueue_for(store, at, Some("TE-2026-000001")).await
    }

    async fn enqueue_for(store: &Store, at: DateTime<Utc>, thread: Option<&str>) -> Enqueued {
        let mut tx = store.begin().await.unwrap();
        let q = store
            .enqueue(&mut tx, &new_out(thread), "chr.mssante.fr", at, |mid| {
                Ok::<_, std::io::Error>(format!("Message-ID: {mid}\r\n\r\nhello\r\n").into_bytes())
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        q
    }

    /// Liveness locks for these worker names (PostgreSQL; nothing on SQLite), as the daemon
    /// takes them: without them a PostgreSQL claim counts as its holder's, dead.
    async fn live(store: &Store, names: &[&str]) -> Option<crate::store::ClaimHolder> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        store.hold_claims(&names).await.unwrap()
    }

    #[test]
    fn message_id_format() {
        assert_eq!(
            outbox_message_id(42, now(), "chr.mssante.fr"),
            format!("<teleavis.42.{}@chr.mssante.fr>", now().timestamp())
        );
    }

    /// The row `worker` claims at `at` (with a 60 s lease), which the test expects to exist.
    async fn claimed(store: &Store, at: DateTime<Utc>, worker: &str) -> super::Claimed {
        store
            .claim(at, worker, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a claimable row")
    }

    #[tokio::test]
    async fn a_claim_says_what_else_is_due() {
        both("outbox_claim_hints", |store| async move {
            let t0 = now();
            let secs = chrono::Duration::seconds;
            let _live = live(&store, &["w1", "w2"]).await;
            // a and b: one thread, same recipients (b waits behind a); c: another thread.
            let a = enqueue_one(&store, t0).await;
            let b = enqueue_one(&store, t0).await;
            let c = enqueue_for(&store, t0, Some("TE-2026-000002")).await;
            let t = t0 + secs(5);
            let first = claimed(&store, t, "w1").await;
            assert_eq!(first.row.id, a.id);
            assert_eq!(
                first.row.raw,
                format!("Message-ID: {}\r\n\r\nhello\r\n", a.message_id).into_bytes(),
                "the bytes come with the claim"
            );
            assert!(first.more_due, "c is claimable");
            let second = claimed(&store, t + secs(2), "w2").await;
            assert_eq!(second.row.id, c.id);
            // b waits behind a, which w1 holds: the next due is the end of a's claim.
            assert!(!second.more_due, "b waits behind a");
            assert_eq!(second.next_due, Some(t + secs(60)));
            // With a and c sent, b (which waited behind a only) is the next claim.
            let mut conn = store.pool().acquire().await.unwrap();
            assert!(store.mark_sent(&mut conn, a.id, t).await.unwrap());
            assert!(store.mark_sent(&mut conn, c.id, t).await.unwrap());
            drop(conn);
            let third = claimed(&store, t + secs(3), "w1").await;
            assert_eq!(third.row.id, b.id);
            // Nothing else pending: the claimed row's own lease is not a next due time.
            assert!(!third.more_due);
            assert_eq!(third.next_due, None);
            // A retry later is the next due time of any other claim.
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .mark_retry(&mut tx, b.id, t + secs(600), "451")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            let d = enqueue_for(&store, t, Some("TE-2026-000003")).await;
            let fourth = claimed(&store, t + secs(4), "w2").await;
            assert_eq!(fourth.row.id, d.id);
            assert!(!fourth.more_due);
            assert_eq!(fourth.next_due, Some(t + secs(600)));
        })
        .await;
    }

    #[tokio::test]
    async fn enqueue_gives_a_stable_message_id() {
        both("outbox_enqueue", |store| async move {
            let q = enqueue_one(&store, now()).await;
            assert_eq!(
                q.message_id,
                outbox_message_id(q.id, now(), "chr.mssante.fr")
            );
            let row = store.get_outbox(q.id).await.unwrap().unwrap();
            assert_eq!(row.message_id, q.message_id);
            assert_eq!(
                row.raw,
                format!("Message-ID: {}\r\n\r\nhello\r\n", q.message_id).into_bytes()
            );
            assert_eq!(row.recipients, vec!["dr.a@b.mssante.fr", "c@d.mssante.fr"]);
            assert_eq!(row.status, OutboxStatus::Pending);
            assert_eq!(row.next_attempt_at, now());
            let found = store
                .find_outbox_by_message_id(q.message_id.trim_matches(['<', '>']))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.id, q.id);

            // A failing builder aborts; rolling back leaves nothing.
            let mut tx = store.begin().await.unwrap();
            let err = store
                .enqueue(&mut tx, &new_out(None), "chr.mssante.fr", now(), |_| {
                    Err::<Vec<u8>, _>(std::io::Error::other("boom"))
                })
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Build { .. }));
            tx.rollback().await.unwrap();
            assert_eq!(
                store
                    .outbox_by_status(OutboxStatus::Pending)
                    .await
                    .unwrap()
                    .len(),
                1
            );

            // No recipient, or a comma inside one: refused.
            let mut tx = store.begin().await.unwrap();
            let mut bad = new_out(None);
            bad.recipients.clear();
            assert!(
                store
                    .enqueue(&mut tx, &bad, "d", now(), |_| Ok::<_, std::io::Error>(
                        vec![]
                    ))
                    .await
                    .is_err()
            );
            bad.recipients = vec!["\"a,b\"@c".into()];
            assert!(
                store
                    .enqueue(&mut tx, &bad, "d", now(), |_| Ok::<_, std::io::Error>(
                        vec![]
                    ))
                    .await
                    .is_err()
            );
            tx.rollback().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn claim_retry_sent_failed_held() {
        both("outbox_transitions", |store| async move {
            let t0 = now();
            let lease = Duration::from_secs(60);
            let _live = live(&store, &["w1", "w2", "w3"]).await;
            let a = enqueue_one(&store, t0).await;
            // Another thread: rows of one thread are claimed one after the other.
            let b = enqueue_for(
                &store,
                t0 + chrono::Duration::seconds(1),
                Some("TE-2026-000002"),
            )
            .await;

            // Not due yet before its time.
            let early = t0 - chrono::Duration::seconds(1);
            assert!(store.claim_due(early, "w1", lease).await.unwrap().is_none());

            // Oldest due first; a claimed row is not claimed again while the lease runs.
            let t = t0 + chrono::Duration::seconds(5);
            let c1 = store.claim_due(t, "w1", lease).await.unwrap().unwrap();
            assert_eq!(c1.id, a.id);
            assert_eq!(c1.claimed_by.as_deref(), Some("w1"));
            assert_eq!(c1.claimed_until, Some(t + chrono::Duration::seconds(60)));
            let c2 = store.claim_due(t, "w2", lease).await.unwrap().unwrap();
            assert_eq!(c2.id, b.id);
            assert!(store.claim_due(t, "w3", lease).await.unwrap().is_none());

            // Claim expired: claimable again (worker died).
            let later = t + chrono::Duration::seconds(61);
            let again = store.claim_due(later, "w3", lease).await.unwrap().unwrap();
            assert_eq!(again.id, a.id);

            // Retry: attempts + 1, claim cleared, not due before next_at.
            let next = later + chrono::Duration::minutes(10);
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .mark_retry(&mut tx, a.id, next, "451 try later")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            let row = store.get_outbox(a.id).await.unwrap().unwrap();
            assert_eq!((row.attempts, row.claimed_by.clone()), (1, None));
            assert_eq!(row.last_error.as_deref(), Some("451 try later"));
            assert_eq!(row.next_attempt_at, next);
            // b's claim (from t) has expired by `later` too: take it out of the way.
            let mut conn = store.pool().acquire().await.unwrap();
            assert!(store.mark_sent(&mut conn, b.id, later).await.unwrap());
            assert!(!store.mark_sent(&mut conn, b.id, later).await.unwrap());
            // A late retry from a worker whose claim expired cannot resurrect a sent row.
            assert!(
                !store
                    .mark_retry(&mut conn, b.id, next, "late")
                    .await
                    .unwrap()
            );
            drop(conn);
            assert!(store.claim_due(later, "w1", lease).await.unwrap().is_none());
            let c = store.claim_due(next, "w1", lease).await.unwrap().unwrap();
            assert_eq!(c.id, a.id);

            // Held: not claimable; released: claimable again.
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .mark_held(&mut tx, a.id, "no certificate for c@d")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            assert!(store.claim_due(next, "w1", lease).await.unwrap().is_none());
            assert_eq!(
                store
                    .outbox_by_status(OutboxStatus::Held)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(store.release_held().await.unwrap(), 1);
            assert_eq!(store.release_held().await.unwrap(), 0);
            let c = store.claim_due(next, "w1", lease).await.unwrap().unwrap();
            assert_eq!(c.id, a.id);

            // Failed: final.
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .mark_failed(&mut tx, a.id, next, "550 no such user")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            let row = store.get_outbox(a.id).await.unwrap().unwrap();
            assert_eq!(row.status, OutboxStatus::Failed);
            assert_eq!(row.attempts, 2);
            assert_eq!(row.failed_at, Some(next));
            assert!(store.claim_due(next, "w1", lease).await.unwrap().is_none());

            let sent = store.outbox_by_status(OutboxStatus::Sent).await.unwrap();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].sent_at, Some(later));
            assert_eq!(sent[0].attempts, 1);
        })
        .await;
    }

    #[tokio::test]
    async fn mail_of_one_thread_is_claimed_in_queue_order() {
        both("outbox_thread_order", |store| async move {
            let _live = live(&store, &["w0", "w1"]).await;
            let t0 = now();
            let first = enqueue_for(&store, t0, Some("TE-2026-000001")).await;
            let second = enqueue_for(&store, t0, Some("TE-2026-000001")).await;
            let other = enqueue_for(&store, t0, Some("TE-2026-000002")).await;
            let t = t0 + chrono::Duration::seconds(1);
            let lease = Duration::from_secs(300);
            let a = store.claim_due(t, "w0", lease).await.unwrap().unwrap();
            assert_eq!(a.id, first.id);
            // While the first is in flight, another worker may take the other thread's mail
            // but not the second message of the first thread to the same recipient.
            let b = store.claim_due(t, "w1", lease).await.unwrap().unwrap();
            assert_eq!(b.id, other.id);
            assert!(store.claim_due(t, "w1", lease).await.unwrap().is_none());
            let mut tx = store.begin().await.unwrap();
            assert!(store.mark_sent(&mut tx, first.id, t).await.unwrap());
            tx.commit().await.unwrap();
            let c = store.claim_due(t, "w1", lease).await.unwrap().unwrap();
            assert_eq!(c.id, second.id);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claimers_never_share_a_row() {
        both("outbox_concurrent_claims", |store| async move {
            let _live = live(&store, &["w0", "w1"]).await;
            let t0 = now();
            let mut ids = HashSet::new();
            // One thread each: mail of one thread is claimed in order (see below).
            for n in 0..20 {
                let thread = format!("TE-2026-{n:06}");
                ids.insert(enqueue_for(&store, t0, Some(&thread)).await.id);
            }
            let t = t0 + chrono::Duration::seconds(1);
            let mut tasks = Vec::new();
            for w in 0..2 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let worker = format!("w{w}");
                    let mut got = Vec::new();
                    loop {
                        match store
                            .claim_due(t, &worker, Duration::from_secs(300))
                            .await
                            .unwrap()
                        {
                            Some(row) => {
                                assert_eq!(row.claimed_by.as_deref(), Some(worker.as_str()));
                                got.push(row.id);
                            }
                            // SKIP LOCKED may come back empty-handed while the other worker
                            // holds the last rows: stop only when nothing is left unclaimed.
                            None => {
                                let left: i64 = sqlx::query_scalar(
                                    "SELECT COUNT(*) FROM outbox WHERE claimed_by IS NULL",
                                )
                                .fetch_one(store.pool())
                                .await
                                .unwrap();
                                if left == 0 {
                                    break;
                                }
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    got
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all.sort_unstable();
            let mut expected: Vec<i64> = ids.into_iter().collect();
            expected.sort_unstable();
            assert_eq!(all, expected, "every row claimed exactly once");
        })
        .await;
    }

    #[tokio::test]
    async fn claims_die_with_their_holder() {
        both("outbox_dead_holder", |store| async move {
            let t0 = now();
            let a = enqueue_one(&store, t0).await;
            let t = t0 + chrono::Duration::seconds(1);
            let lease = Duration::from_secs(300);
            let holder = live(&store, &["gone:1:0"]).await;
            let c = store
                .claim_due(t, "gone:1:0", lease)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(c.id, a.id);
            let _other = live(&store, &["next:2:0"]).await;
            if let Some(mut h) = holder {
                // PostgreSQL: alive, the claim holds for its whole lease...
                assert!(h.is_alive().await);
                assert!(
                    store
                        .claim_due(t, "next:2:0", lease)
                        .await
                        .unwrap()
                        .is_none()
                );
                // ...and its holder's session ending frees it at once.
                drop(h);
                let mut got = None;
                for _ in 0..50 {
                    got = store.claim_due(t, "next:2:0", lease).await.unwrap();
                    if got.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert_eq!(
                    got.map(|r| r.id),
                    Some(a.id),
                    "taken over once the holder died"
                );
            } else {
                // SQLite: the next start frees every claim.
                assert!(
                    store
                        .claim_due(t, "next:2:0", lease)
                        .await
                        .unwrap()
                        .is_none()
                );
                assert_eq!(store.release_all_claims().await.unwrap(), 1);
                let got = store.claim_due(t, "next:2:0", lease).await.unwrap();
                assert_eq!(got.map(|r| r.id), Some(a.id));
            }
        })
        .await;
    }

    #[tokio::test]
    async fn next_due_is_the_nearest_future_retry_or_claim_end() {
        both("outbox_next_due", |store| async move {
            let t0 = now();
            assert_eq!(store.next_due_after(t0).await.unwrap(), None);
            let a = enqueue_for(&store, t0, Some("TE-2026-000001")).await;
            // Due already: not a reason to wake later.
            assert_eq!(store.next_due_after(t0).await.unwrap(), None);
            let retry_at = t0 + chrono::Duration::seconds(90);
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .mark_retry(&mut tx, a.id, retry_at, "451")
                    .await
                    .unwrap()
            );
            tx.commit().await.unwrap();
            assert_eq!(store.next_due_after(t0).await.unwrap(), Some(retry_at));
            let _b = enqueue_for(&store, t0, Some("TE-2026-000002")).await;
            let _live = live(&store, &["w"]).await;
            let claimed = store
                .claim_due(t0, "w", Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                store.next_due_after(t0).await.unwrap(),
                claimed.claimed_until,
                "the end of a claim comes before the retry"
            );
        })
        .await;
    }
}
