//! The append-only audit trail, chained by SHA-256, and its verification.
//!
//! **Hash.** `hash = hex(SHA-256(enc))` where `enc` is the domain tag `teleavis-audit-v1`
//! followed by six fields in this order — `prev_hash`, `at`, `actor`, `action`, `subject`,
//! `details` — each written as its UTF-8 byte length (8 bytes, big-endian) then its bytes. The
//! length prefix makes the encoding unambiguous (no separator can be forged inside a field).
//! `at` is the stored text ([`ts`]), `details` the stored JSON text exactly as written (the
//! verifier hashes the stored text, never a re-serialisation). The first row's `prev_hash` is
//! [`GENESIS_HASH`] (64 zeros).
//!
//! **No forks.** Appending reads the last hash then inserts, so appenders must be serialised:
//! on PostgreSQL `pg_advisory_xact_lock(AUDIT_LOCK_KEY)` is taken first (held to the end of the
//! transaction; the next statement's snapshot then sees the previous appender's commit); on
//! SQLite [`Store::begin`] opens `BEGIN IMMEDIATE`, so the transaction already holds the write
//! lock and reads the latest state. As a last line of defence `prev_hash` is UNIQUE: two rows
//! can never claim the same predecessor, whatever the caller did. Appending outside a
//! transaction is refused. Append late in the message transaction: on PostgreSQL the lock
//! serialises everyone from that point to the commit.
//!
//! **Limits.** Verification detects any edited, inserted or removed row except removal of the
//! newest rows; `audit verify` prints the last hash so that it can be recorded elsewhere.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection};
use tracing::debug;

use super::error::Ctx;
use super::{Backend, Result, Store, StoreError, col, ts};

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// PostgreSQL advisory lock key serialising audit appends ("teleavis" in ASCII).
const AUDIT_LOCK_KEY: i64 = 0x7465_6c65_6176_6973;

/// Domain tag heading every hashed encoding.
const HASH_TAG: &[u8] = b"teleavis-audit-v1";

/// Rows read per batch by the verifier.
const VERIFY_BATCH: i64 = 1000;

/// A row just appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// Its hash.
    pub hash: String,
}

/// Outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows checked.
    pub rows: u64,
    /// First row that does not verify, and why.
    pub first_bad: Option<(i64, String)>,
    /// Hash of the newest row (to record outside the database).
    pub last_hash: Option<String>,
}

impl AuditReport {
    /// True when every row verified.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// The hash of an audit row (see the module documentation for the encoding).
pub fn audit_hash(
    prev_hash: &str,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(HASH_TAG);
    for field in [prev_hash, at, actor, action, subject, details] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl Store {
    /// Appends an audit row in the caller's transaction. `details` must hold no patient data
    /// (ids, addresses, outcomes). See the module documentation for the chaining rules.
    pub async fn append_audit(
        &self,
        conn: &mut AnyConnection,
        actor: &str,
        action: &str,
        subject: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<AuditEntry> {
        if !conn.is_in_transaction() {
            return Err(StoreError::Invalid {
                what: "audit append",
                detail: "must run inside a transaction (Store::begin)".into(),
            });
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK_KEY)
                .execute(&mut *conn)
                .await
                .ctx("locking the audit trail")?;
        }
        let prev: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .ctx("reading the last audit hash")?;
        let prev = prev.unwrap_or_else(|| GENESIS_HASH.to_owned());
        let at = ts(now);
        let details = details.to_string();
        let hash = audit_hash(&prev, &at, actor, action, subject, &details);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit (at, actor, action, subject, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&at)
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(&details)
        .bind(&prev)
        .bind(&hash)
        .fetch_one(&mut *conn)
        .await
        .with_ctx(|| format!("appending audit row `{action}` on {subject}"))?;
        debug!(audit_id = id, actor, action, subject, "audit row appended");
        Ok(AuditEntry { id, hash })
    }

    /// Walks the whole chain in id order: each row's `prev_hash` must be the previous row's
    /// hash (genesis for the first) and its hash must match its content.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let mut report = AuditReport {
            rows: 0,
            first_bad: None,
            last_hash: None,
        };
        let mut expected_prev = GENESIS_HASH.to_owned();
        let mut after: i64 = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT id, at, actor, action, subject, details, prev_hash, hash FROM audit \
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(VERIFY_BATCH)
            .fetch_all(&self.pool)
            .await
            .ctx("reading the audit trail")?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: i64 = col(row, "id")?;
                let prev_hash: String = col(row, "prev_hash")?;
                let hash: String = col(row, "hash")?;
                let computed = audit_hash(
                    &prev_hash,
                    &col::<String>(row, "at")?,
                    &col::<String>(row, "actor")?,
                    &col::<String>(row, "action")?,
                    &col::<String>(row, "subject")?,
                    &col::<String>(row, "details")?,
                );
                let problem = if prev_hash != expected_prev {
                    Some(if report.rows == 0 {
                        "the first row does not start from the genesis hash".to_owned()
                    } else {
                        "prev_hash is not the hash of the previous row (row removed or inserted)"
                            .to_owned()
                    })
                } else if computed != hash {
                    Some("hash does not match the row's content (row edited)".to_owned())
                } else {
                    None
                };
                if let (Some(problem), None) = (problem, &report.first_bad) {
                    report.first_bad = Some((id, problem));
                }
                report.rows += 1;
                expected_prev = hash;
                after = id;
            }
        }
        report.last_hash = (report.rows > 0).then_some(expected_prev);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlx::AssertSqlSafe;

    use super::super::testutil::both;
    use super::super::{Backend, parse_ts};
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_ts("2026-11-27T13:46:33.123Z").unwrap()
    }

    #[test]
    fn encoding_is_unambiguous() {
        let a = audit_hash(GENESIS_HASH, "t", "ab", "c", "s", "{}");
        let b = audit_hash(GENESIS_HASH, "t", "a", "bc", "s", "{}");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(a, audit_hash(GENESIS_HASH, "t", "ab", "c", "s", "{}"));
    }

    async fn append_three(store: &Store) {
        let mut tx = store.begin().await.unwrap();
        for i in 0..3 {
            store
                .append_audit(
                    &mut tx,
                    "intake",
                    "thread_opened",
                    "TE-2026-000001",
                    &json!({"i": i}),
                    now(),
                )
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn chain_verifies_and_detects_tampering() {
        both("audit_tamper", |store| async move {
            let empty = store.verify_audit().await.unwrap();
            assert_eq!(
                (empty.rows, empty.first_bad, empty.last_hash),
                (0, None, None)
            );
            append_three(&store).await;
            let report = store.verify_audit().await.unwrap();
            assert!(report.is_ok(), "{report:?}");
            assert_eq!(report.rows, 3);

            // Outside a transaction: refused.
            let mut conn = store.pool().acquire().await.unwrap();
            assert!(
                store
                    .append_audit(&mut conn, "a", "b", "c", &json!({}), now())
                    .await
                    .is_err()
            );
            // The triggers refuse updates and deletes.
            assert!(
                sqlx::query("UPDATE audit SET actor = 'x'")
                    .execute(&mut *conn)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("DELETE FROM audit")
                    .execute(&mut *conn)
                    .await
                    .is_err()
            );

            // Bypass the trigger and edit the second row: detected at that row.
            let second: i64 =
                sqlx::query_scalar("SELECT id FROM audit ORDER BY id LIMIT 1 OFFSET 1")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            let drop = match store.backend() {
                Backend::Sqlite => "DROP TRIGGER audit_no_update",
                Backend::Postgres => "DROP TRIGGER audit_no_update ON audit",
            };
            sqlx::query(drop).execute(&mut *conn).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE audit SET details = '{{\"i\": 42}}' WHERE id = {second}"
            )))
            .execute(&mut *conn)
            .await
            .unwrap();
            let report = store.verify_audit().await.unwrap();
            assert_eq!(report.rows, 3);
            let (bad, why) = report.first_bad.unwrap();
            assert_eq!(bad, second);
            assert!(why.contains("edited"), "{why}");
        })
        .await;
    }

    #[tokio::test]
    async fn removed_row_is_detected() {
        both("audit_remove", |store| async move {
            append_three(&store).await;
            let mut conn = store.pool().acquire().await.unwrap();
            let drop = match store.backend() {
                Backend::Sqlite => "DROP TRIGGER audit_no_delete",
                Backend::Postgres => "DROP TRIGGER audit_no_update ON audit",
            };
            sqlx::query(drop).execute(&mut *conn).await.unwrap();
            let second: i64 =
                sqlx::query_scalar("SELECT id FROM audit ORDER BY id LIMIT 1 OFFSET 1")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            sqlx::query("DELETE FROM audit WHERE id = $1")
                .bind(second)
                .execute(&mut *conn)
                .await
                .unwrap();
            let report = store.verify_audit().await.unwrap();
            assert_eq!(report.rows, 2);
            let (bad, why) = report.first_bad.unwrap();
            assert!(bad > second);
            assert!(why.contains("removed"), "{why}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appenders_do_not_fork_the_chain() {
        both("audit_concurrent", |store| async move {
            let mut tasks = Vec::new();
            for w in 0..4 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..10 {
                        let mut tx = store.begin().await.unwrap();
                        store
                            .append_audit(
                                &mut tx,
                                &format!("w{w}"),
                                "tick",
                                "x",
                                &json!({"i": i}),
                                now(),
                            )
                            .await
                            .unwrap();
                        tokio::task::yield_now().await;
                        tx.commit().await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let report = store.verify_audit().await.unwrap();
            assert_eq!(report.rows, 40);
            assert!(report.is_ok(), "{report:?}");
        })
        .await;
    }
}
