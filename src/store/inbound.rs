//! Inbound mail as received from IMAP: the raw bytes, dedupe keys, outcome and IMAP move state.
//!
//! The row is written before anything else happens to a message and is the proof that it was
//! received; dedupe is on the raw bytes' SHA-256 (unique) and on the Message-ID. `destination`
//! set with `moved_at` still NULL means "committed but not yet moved out of INBOX": after a
//! crash, [`Store::unmoved`] lists what to MOVE again.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use tracing::debug;

use super::blobs::{self, Blob};
use super::error::Ctx;
use super::{
    InboundStatus, Result, Store, StoreError, col, col_parsed, col_ts, col_ts_opt, col_u,
    normalize_message_id, to_i64, ts,
};

/// A message just fetched, to store as received.
#[derive(Clone)]
pub struct NewInbound<'a> {
    /// When it was fetched.
    pub received_at: DateTime<Utc>,
    /// IMAP folder it was fetched from.
    pub mailbox: String,
    /// UIDVALIDITY of that folder.
    pub uidvalidity: u32,
    /// Its UID.
    pub uid: u32,
    /// Its Message-ID header, if any (normalised to `<…>` by the store).
    pub message_id: Option<String>,
    /// SHA-256 of `raw`, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The `From` address as written in the header (not yet authenticated).
    pub from_addr: Option<String>,
    /// The message exactly as fetched (borrowed from the fetch: never copied to be stored).
    pub raw: Cow<'a, [u8]>,
}

/// Every column of an inbound row but the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMeta {
    /// Row id (the quarantine id shown to operators).
    pub id: i64,
    /// When it was fetched.
    pub received_at: DateTime<Utc>,
    /// IMAP folder it was fetched from.
    pub mailbox: String,
    /// UIDVALIDITY of that folder.
    pub uidvalidity: u32,
    /// Its UID.
    pub uid: u32,
    /// Its Message-ID, normalised.
    pub message_id: Option<String>,
    /// SHA-256 of the raw bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Header `From` address.
    pub from_addr: Option<String>,
    /// What became of it.
    pub outcome: InboundStatus,
    /// Reason code when quarantined.
    pub reason: Option<String>,
    /// Free text for the operator (never patient data).
    pub detail: Option<String>,
    /// Thread it was applied to.
    pub thread_id: Option<String>,
    /// IMAP folder it must be moved to.
    pub destination: Option<String>,
    /// When the IMAP MOVE was confirmed.
    pub moved_at: Option<DateTime<Utc>>,
    /// When retention wiped the raw bytes (the row stays, so the message is never taken again).
    pub purged_at: Option<DateTime<Utc>>,
}

/// A whole inbound row, raw bytes included.
#[derive(Clone, PartialEq, Eq)]
pub struct InboundRow {
    /// All other columns.
    pub meta: InboundMeta,
    /// The message exactly as fetched.
    pub raw: Vec<u8>,
}

/// One line of `quarantine list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRow {
    /// Inbound row id.
    pub id: i64,
    /// When it was fetched.
    pub received_at: DateTime<Utc>,
    /// Header `From` address.
    pub from_addr: Option<String>,
    /// Its Message-ID.
    pub message_id: Option<String>,
    /// Reason code.
    pub reason: Option<String>,
    /// Operator detail.
    pub detail: Option<String>,
}

/// What happened to an inbound message ([`Store::set_inbound_outcome`]). Every field is written
/// as given (`None` clears the column); `moved_at` is left alone.
#[derive(Debug, Clone, Copy)]
pub struct InboundOutcome<'a> {
    /// What became of it.
    pub outcome: InboundStatus,
    /// Reason code when quarantined.
    pub reason: Option<&'a str>,
    /// Operator detail (no patient data).
    pub detail: Option<&'a str>,
    /// Thread the message was applied to.
    pub thread_id: Option<&'a str>,
    /// IMAP folder to move it to (processed or quarantine folder).
    pub destination: Option<&'a str>,
}

impl InboundOutcome<'_> {
    /// This outcome, every other column cleared.
    pub fn new(outcome: InboundStatus) -> Self {
        InboundOutcome {
            outcome,
            reason: None,
            detail: None,
            thread_id: None,
            destination: None,
        }
    }
}

macro_rules! meta_cols {
    () => {
        "id, received_at, mailbox, uidvalidity, uid, message_id, sha256, size, from_addr, \
         outcome, reason, detail, thread_id, destination, moved_at, purged_at"
    };
}

fn meta_from_row(row: &AnyRow) -> Result<InboundMeta> {
    Ok(InboundMeta {
        id: col(row, "id")?,
        received_at: col_ts(row, "received_at")?,
        mailbox: col(row, "mailbox")?,
        uidvalidity: col_u(row, "uidvalidity")?,
        uid: col_u(row, "uid")?,
        message_id: col(row, "message_id")?,
        sha256: col(row, "sha256")?,
        size: col_u(row, "size")?,
        from_addr: col(row, "from_addr")?,
        outcome: col_parsed(row, "outcome")?,
        reason: col(row, "reason")?,
        detail: col(row, "detail")?,
        thread_id: col(row, "thread_id")?,
        destination: col(row, "destination")?,
        moved_at: col_ts_opt(row, "moved_at")?,
        purged_at: col_ts_opt(row, "purged_at")?,
    })
}

impl Store {
    /// Stores a message as received, outcome `stored`; returns its id. A message whose SHA-256
    /// is already stored is refused with [`StoreError::DuplicateInbound`] (carrying the existing
    /// id); the transaction stays usable on both backends (`ON CONFLICT DO NOTHING`).
    pub async fn insert_inbound(
        &self,
        conn: &mut AnyConnection,
        new: &NewInbound<'_>,
    ) -> Result<i64> {
        let message_id = new.message_id.as_deref().and_then(normalize_message_id);
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO inbound (received_at, mailbox, uidvalidity, uid, message_id, sha256, \
             size, from_addr, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (sha256) DO NOTHING RETURNING id",
        )
        .bind(ts(new.received_at))
        .bind(&new.mailbox)
        .bind(i64::from(new.uidvalidity))
        .bind(i64::from(new.uid))
        .bind(message_id)
        .bind(&new.sha256)
        .bind(to_i64("message size", new.size)?)
        .bind(&new.from_addr)
        .bind(InboundStatus::Stored.as_str())
        .fetch_optional(&mut *conn)
        .await
        .ctx("inserting an inbound message")?;
        match id {
            Some(id) => {
                blobs::put(conn, Blob::Inbound, id, &new.raw).await?;
                debug!(inbound_id = id, uid = new.uid, "inbound message stored");
                Ok(id)
            }
            None => {
                let existing_id: i64 =
                    sqlx::query_scalar("SELECT id FROM inbound WHERE sha256 = $1")
                        .bind(&new.sha256)
                        .fetch_one(&mut *conn)
                        .await
                        .ctx("looking up a duplicate inbound message")?;
                Err(StoreError::DuplicateInbound {
                    sha256: new.sha256.clone(),
                    existing_id,
                })
            }
        }
    }

    /// The stored message with these raw bytes' SHA-256, if any.
    pub async fn find_inbound_by_sha256(&self, sha256: &str) -> Result<Option<InboundMeta>> {
        sqlx::query(concat!(
            "SELECT ",
            meta_cols!(),
            " FROM inbound WHERE sha256 = $1"
        ))
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await
        .ctx("looking up an inbound message by SHA-256")?
        .as_ref()
        .map(meta_from_row)
        .transpose()
    }

    /// Stored messages with this Message-ID (any form, normalised), oldest first.
    pub async fn find_inbound_by_message_id(&self, message_id: &str) -> Result<Vec<InboundMeta>> {
        let Some(message_id) = normalize_message_id(message_id) else {
            return Ok(Vec::new());
        };
        sqlx::query(concat!(
            "SELECT ",
            meta_cols!(),
            " FROM inbound WHERE message_id = $1 ORDER BY id"
        ))
        .bind(message_id)
        .fetch_all(&self.pool)
        .await
        .ctx("looking up inbound messages by Message-ID")?
        .iter()
        .map(meta_from_row)
        .collect()
    }

    /// Records what happened to a message (see [`InboundOutcome`]).
    pub async fn set_inbound_outcome(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        outcome: &InboundOutcome<'_>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE inbound SET outcome = $2, reason = $3, detail = $4, thread_id = $5, \
             destination = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(outcome.outcome.as_str())
        .bind(outcome.reason)
        .bind(outcome.detail)
        .bind(outcome.thread_id)
        .bind(outcome.destination)
        .execute(&mut *conn)
        .await
        .with_ctx(|| format!("recording the outcome of inbound message #{id}"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "inbound message",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// Records that the IMAP MOVE to `destination` succeeded (outside the message transaction:
    /// the move happens after the commit).
    pub async fn mark_moved(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query("UPDATE inbound SET moved_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .with_ctx(|| format!("marking inbound message #{id} moved"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "inbound message",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// One stored message, raw bytes included.
    pub async fn get_inbound(&self, id: i64) -> Result<Option<InboundRow>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .ctx("reading an inbound message")?;
        let row = sqlx::query(concat!(
            "SELECT ",
            meta_cols!(),
            " FROM inbound WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .with_ctx(|| format!("reading inbound message #{id}"))?;
        let Some(row) = row else { return Ok(None) };
        let meta = meta_from_row(&row)?;
        let size = usize::try_from(meta.size).unwrap_or(0);
        let raw = blobs::get(&mut conn, Blob::Inbound, id, size).await?;
        Ok(Some(InboundRow { meta, raw }))
    }

    /// Quarantined messages, oldest first.
    pub async fn list_quarantine(&self) -> Result<Vec<QuarantineRow>> {
        let rows = sqlx::query(
            "SELECT id, received_at, from_addr, message_id, reason, detail FROM inbound \
             WHERE outcome = $1 ORDER BY id",
        )
        .bind(InboundStatus::Quarantined.as_str())
        .fetch_all(&self.pool)
        .await
        .ctx("listing quarantined messages")?;
        rows.iter()
            .map(|row| {
                Ok(QuarantineRow {
                    id: col(row, "id")?,
                    received_at: col_ts(row, "received_at")?,
                    from_addr: col(row, "from_addr")?,
                    message_id: col(row, "message_id")?,
                    reason: col(row, "reason")?,
                    detail: col(row, "detail")?,
                })
            })
            .collect()
    }

    /// Messages whose outcome is committed (destination set) but whose IMAP MOVE was not
    /// confirmed: to move again after a crash. Oldest first.
    pub async fn unmoved(&self) -> Result<Vec<InboundMeta>> {
        sqlx::query(concat!(
            "SELECT ",
            meta_cols!(),
            " FROM inbound WHERE destination IS NOT NULL AND moved_at IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .ctx("listing messages not yet moved")?
        .iter()
        .map(meta_from_row)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{both, sample_inbound as sample};
    use super::*;

    #[tokio::test]
    async fn inbound_lifecycle_and_duplicate_sha() {
        both("inbound_lifecycle", |store| async move {
            let new = sample(1);
            let mut tx = store.begin().await.unwrap();
            let id = store.insert_inbound(&mut tx, &new).await.unwrap();
            // Same bytes again, same transaction: refused, and the transaction still works.
            let dup = store.insert_inbound(&mut tx, &new).await.unwrap_err();
            assert!(
                matches!(dup, StoreError::DuplicateInbound { existing_id, .. } if existing_id == id)
            );
            assert!(dup.is_unique_violation());
            store
                .set_inbound_outcome(
                    &mut tx,
                    id,
                    &InboundOutcome {
                        outcome: InboundStatus::Quarantined,
                        reason: Some("bad_signature"),
                        detail: Some("signature does not verify"),
                        thread_id: None,
                        destination: Some("Quarantaine"),
                    },
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();

            // Another transaction: still refused.
            let mut tx = store.begin().await.unwrap();
            assert!(store.insert_inbound(&mut tx, &new).await.is_err());
            tx.rollback().await.unwrap();

            let found = store
                .find_inbound_by_sha256(&new.sha256)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.id, id);
            assert_eq!(found.uidvalidity, 4_000_000_000);
            assert_eq!(found.message_id.as_deref(), Some("<m1@b>"));
            let by_mid = store.find_inbound_by_message_id("<m1@b>").await.unwrap();
            assert_eq!(by_mid.len(), 1);
            assert!(
                store
                    .find_inbound_by_message_id("x@y")
                    .await
                    .unwrap()
                    .is_empty()
            );

            let row = store.get_inbound(id).await.unwrap().unwrap();
            assert_eq!(row.raw, *new.raw);
            assert_eq!(row.meta.received_at, new.received_at);
            assert_eq!(row.meta.outcome, "quarantined");
            assert!(store.get_inbound(id + 100).await.unwrap().is_none());

            let q = store.list_quarantine().await.unwrap();
            assert_eq!(q.len(), 1);
            assert_eq!(q[0].reason.as_deref(), Some("bad_signature"));

            let unmoved = store.unmoved().await.unwrap();
            assert_eq!(unmoved.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
            store.mark_moved(id, new.received_at).await.unwrap();
            assert!(store.unmoved().await.unwrap().is_empty());
            assert!(matches!(
                store.mark_moved(id + 100, new.received_at).await,
                Err(StoreError::NotFound { .. })
            ));
        })
        .await;
    }

    #[tokio::test]
    async fn rollback_leaves_no_inbound_row() {
        both("inbound_rollback", |store| async move {
            let new = sample(7);
            let mut tx = store.begin().await.unwrap();
            store.insert_inbound(&mut tx, &new).await.unwrap();
            tx.rollback().await.unwrap();
            assert!(
                store
                    .find_inbound_by_sha256(&new.sha256)
                    .await
                    .unwrap()
                    .is_none()
            );
            let mut tx = store.begin().await.unwrap();
            store.insert_inbound(&mut tx, &new).await.unwrap();
            tx.commit().await.unwrap();
            assert!(
                store
                    .find_inbound_by_sha256(&new.sha256)
                    .await
                    .unwrap()
                    .is_some()
            );
        })
        .await;
    }
}
