//! Accepted signatures: the digest of the author's signature of every message the gateway
//! handled, so that a replayed copy (new outer headers, same signed content) is recognised as
//! a duplicate of the first. Unique on the digest, so a lookup is one index probe; rows are
//! kept by purge (a digest says nothing about a patient) so a late replay is still caught.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::error::Ctx;
use super::{Result, Store, col, col_ts, ts};

/// The first message accepted with a given signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedSignature {
    /// The inbound row of that first message.
    pub inbound_id: i64,
    /// The thread it was applied to, if any.
    pub thread_id: Option<String>,
    /// The author's address.
    pub signer: String,
    /// When it was accepted.
    pub accepted_at: DateTime<Utc>,
}

impl Store {
    /// The message first accepted with this signature digest, read in the caller's transaction.
    pub async fn find_accepted_signature(
        &self,
        conn: &mut AnyConnection,
        digest: &str,
    ) -> Result<Option<AcceptedSignature>> {
        let row = sqlx::query(
            "SELECT inbound_id, thread_id, signer, accepted_at FROM accepted_signatures \
             WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(&mut *conn)
        .await
        .ctx("looking up an accepted signature")?;
        row.map(|row| {
            Ok(AcceptedSignature {
                inbound_id: col(&row, "inbound_id")?,
                thread_id: col(&row, "thread_id")?,
                signer: col(&row, "signer")?,
                accepted_at: col_ts(&row, "accepted_at")?,
            })
        })
        .transpose()
    }

    /// Records the signature of an accepted message, in the transaction of everything else the
    /// message causes. Returns false when the digest was already recorded (a concurrent copy
    /// won): the caller must then roll back.
    pub async fn record_accepted_signature(
        &self,
        conn: &mut AnyConnection,
        digest: &str,
        accepted: &AcceptedSignature,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO accepted_signatures (digest, inbound_id, thread_id, signer, accepted_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(accepted.inbound_id)
        .bind(&accepted.thread_id)
        .bind(&accepted.signer)
        .bind(ts(accepted.accepted_at))
        .execute(&mut *conn)
        .await
        .ctx("recording an accepted signature")?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_ts;
    use super::super::testutil::both;
    use super::*;

    async fn record(store: &Store, tx: &mut AnyConnection, d: &str, a: AcceptedSignature) -> bool {
        store.record_accepted_signature(tx, d, &a).await.unwrap()
    }

    async fn find(store: &Store, digest: &str) -> Option<AcceptedSignature> {
        let mut tx = store.begin().await.unwrap();
        store
            .find_accepted_signature(&mut tx, digest)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_digest_is_recorded_once_and_found_again() {
        both("signatures", |store| async move {
            let first = AcceptedSignature {
                inbound_id: 7,
                thread_id: Some("TE-2026-000001".into()),
                signer: "dr.martin@cabinet.test".into(),
                accepted_at: parse_ts("2026-11-27T10:00:00Z").unwrap(),
            };
            assert_eq!(find(&store, "ab12").await, None);
            let mut tx = store.begin().await.unwrap();
            assert!(record(&store, &mut tx, "ab12", first.clone()).await);
            let replay = AcceptedSignature {
                inbound_id: 8,
                thread_id: None,
                ..first.clone()
            };
            assert!(
                !record(&store, &mut tx, "ab12", replay).await,
                "the first one stays"
            );
            tx.commit().await.unwrap();
            assert_eq!(find(&store, "ab12").await, Some(first.clone()));
            assert_eq!(find(&store, "cd34").await, None);
            // Rolled back with its message: not recorded.
            let mut tx = store.begin().await.unwrap();
            assert!(record(&store, &mut tx, "ef56", first).await);
            tx.rollback().await.unwrap();
            assert_eq!(find(&store, "ef56").await, None);
        })
        .await;
    }
}
