//! Operations queries: what a Prometheus scrape and `teleavis status` read (outbox by state,
//! threads by status and category, quarantine by reason, overdue threads), the heartbeat of the
//! running instances, the audit list and head, and the consistent copy of a SQLite database.
//!
//! Everything here is read-mostly and cheap (indexed counts), because a scrape runs it every
//! 15 s while the intake writes.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::error::Ctx;
use super::{Backend, Result, Store, StoreError, col, col_ts, col_ts_opt, ts};

/// The database half of the gauges.
#[derive(Debug, Clone, Default)]
pub struct OpsSnapshot {
    /// Outbox rows by state (`pending`, `held`, `sent`, `failed`), every state present.
    pub outbox: Vec<(String, i64)>,
    /// Creation time of the oldest pending row.
    pub oldest_pending: Option<DateTime<Utc>>,
    /// Threads by (status, category).
    pub threads: Vec<(String, String, i64)>,
}

/// What one running `teleavis run` writes every 15 s.
#[derive(Debug, Clone)]
pub struct InstanceBeat {
    /// `host:pid`.
    pub name: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub lease_held: bool,
    pub imap_connected: bool,
    pub imap_contact_at: Option<DateTime<Utc>>,
    /// The last beat of a clean shutdown.
    pub stopped: bool,
}

/// An instance as `status` reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub name: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub lease_held: bool,
    pub imap_connected: bool,
    pub imap_contact_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// One audit row, for `audit list` and the head in `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub hash: String,
}

const OUTBOX_STATES: [&str; 4] = ["pending", "held", "sent", "failed"];

fn audit_row(row: &sqlx::any::AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        id: col(row, "id")?,
        at: col_ts(row, "at")?,
        actor: col(row, "actor")?,
        action: col(row, "action")?,
        subject: col(row, "subject")?,
        details: col(row, "details")?,
        hash: col(row, "hash")?,
    })
}

impl Store {
    /// Outbox by state with the oldest pending row, and threads by status and category.
    pub async fn ops_snapshot(&self) -> Result<OpsSnapshot> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .ctx("counting the outbox")?;
        let mut outbox: Vec<(String, i64)> =
            OUTBOX_STATES.iter().map(|s| (s.to_string(), 0)).collect();
        for r in &rows {
            let status: String = col(r, "status")?;
            let n: i64 = col(r, "n")?;
            match outbox.iter_mut().find(|(s, _)| *s == status) {
                Some(slot) => slot.1 = n,
                None => outbox.push((status, n)),
            }
        }
        let oldest: Option<String> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await
                .ctx("reading the oldest pending outbox row")?;
        let oldest_pending = oldest.and_then(|t| super::parse_ts(&t).ok());
        let rows = sqlx::query(
            "SELECT status, category, COUNT(*) AS n FROM threads GROUP BY status, category",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("counting threads")?;
        let threads = rows
            .iter()
            .map(|r| Ok((col(r, "status")?, col(r, "category")?, col(r, "n")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(OpsSnapshot {
            outbox,
            oldest_pending,
            threads,
        })
    }

    /// Quarantined messages received since `since`, by reason.
    pub async fn quarantine_by_reason_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT COALESCE(reason, 'unknown') AS reason, COUNT(*) AS n FROM inbound \
             WHERE outcome = 'quarantined' AND received_at >= $1 GROUP BY reason ORDER BY reason",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await
        .ctx("counting quarantined messages")?;
        rows.iter()
            .map(|r| Ok((col(r, "reason")?, col(r, "n")?)))
            .collect()
    }

    /// Outbox rows that failed since `since`.
    pub async fn failed_outbox_since(&self, since: DateTime<Utc>) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE status = 'failed' AND failed_at >= $1",
        )
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await
        .ctx("counting failed outbox rows")
    }

    /// Open threads past their deadline with no expert action yet (the desk's deadlines,
    /// DESIGN.md *The desk*), as (category, urgent): for both the metric and `status`.
    pub async fn overdue_threads(&self, now: DateTime<Utc>) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query(
            "SELECT t.category, d.urgent FROM thread_deadlines d \
             JOIN threads t ON t.id = d.thread_id \
             WHERE d.stopped_at IS NULL AND d.deadline_at <= $1 \
             AND t.status IN ('nouvelle', 'en_cours')",
        )
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await
        .ctx("reading overdue threads")?;
        rows.iter()
            .map(|r| Ok((col(r, "category")?, col::<i64>(r, "urgent")? != 0)))
            .collect()
    }

    /// Records the heartbeat of a running instance, and forgets instances silent for a day.
    pub async fn beat(&self, b: &InstanceBeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (name, version, started_at, heartbeat_at, lease_held, \
             imap_connected, imap_contact_at, stopped_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             heartbeat_at = excluded.heartbeat_at, lease_held = excluded.lease_held, \
             imap_connected = excluded.imap_connected, imap_contact_at = excluded.imap_contact_at, \
             stopped_at = excluded.stopped_at",
        )
        .bind(&b.name)
        .bind(&b.version)
        .bind(ts(b.started_at))
        .bind(ts(b.now))
        .bind(i64::from(b.lease_held))
        .bind(i64::from(b.imap_connected))
        .bind(b.imap_contact_at.map(ts))
        .bind(b.stopped.then(|| ts(b.now)))
        .execute(&self.pool)
        .await
        .ctx("recording the instance heartbeat")?;
        sqlx::query("DELETE FROM instances WHERE heartbeat_at < $1")
            .bind(ts(b.now - chrono::Duration::days(1)))
            .execute(&self.pool)
            .await
            .ctx("forgetting old instances")?;
        Ok(())
    }

    /// Every instance seen in the last day, the most recent heartbeat first.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>> {
        let rows = sqlx::query(
            "SELECT name, version, started_at, heartbeat_at, lease_held, imap_connected, \
             imap_contact_at, stopped_at FROM instances ORDER BY heartbeat_at DESC",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("reading the instances")?;
        rows.iter()
            .map(|r| {
                Ok(InstanceRow {
                    name: col(r, "name")?,
                    version: col(r, "version")?,
                    started_at: col_ts(r, "started_at")?,
                    heartbeat_at: col_ts(r, "heartbeat_at")?,
                    lease_held: col::<i64>(r, "lease_held")? != 0,
                    imap_connected: col::<i64>(r, "imap_connected")? != 0,
                    imap_contact_at: col_ts_opt(r, "imap_contact_at")?,
                    stopped_at: col_ts_opt(r, "stopped_at")?,
                })
            })
            .collect()
    }

    /// The newest audit row.
    pub async fn audit_head(&self) -> Result<Option<AuditRow>> {
        let row = sqlx::query(
            "SELECT id, at, actor, action, subject, details, hash FROM audit \
             ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .ctx("reading the audit head")?;
        row.as_ref().map(audit_row).transpose()
    }

    /// The newest `limit` audit rows (of `subject` when given), oldest first.
    pub async fn list_audit(&self, subject: Option<&str>, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, details, hash FROM audit \
             WHERE ($1 = '' OR subject = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(subject.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .ctx("listing the audit trail")?;
        let mut out = rows.iter().map(audit_row).collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// A consistent copy of a SQLite database into `dest` (which must not exist or be empty),
    /// taken with `VACUUM INTO` inside one read transaction: writers go on meanwhile (WAL) and
    /// the copy holds exactly the transactions committed when it started.
    pub async fn backup_sqlite(&self, dest: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Invalid {
                what: "backup",
                detail: "only a SQLite database is copied this way (PostgreSQL: pg_dump)".into(),
            });
        }
        let dest = dest.to_str().ok_or_else(|| StoreError::Invalid {
            what: "backup",
            detail: "the destination path is not UTF-8".into(),
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await
            .ctx("copying the database (VACUUM INTO)")?;
        Ok(())
    }

    /// Copies what the SQLite write-ahead log holds into the database file, without waiting
    /// for or blocking anyone (`PASSIVE`): the daemon calls it every second, so that the copy
    /// and its `fsync` of the database file happen here rather than inside the commit of the
    /// message that filled the log (SQLite's automatic checkpoint at 1,000 pages stays as the
    /// safety net). Returns the log's frames and those now copied; `None` on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<Option<(i64, i64)>> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await
            .ctx("copying the write-ahead log into the database")?;
        Ok(Some((col(&row, "log")?, col(&row, "checkpointed")?)))
    }

    /// `PRAGMA integrity_check` of a SQLite database: "ok" or the problems found.
    pub async fn sqlite_integrity(&self) -> Result<String> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .ctx("checking the database integrity")?;
        Ok(rows.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{both, sqlite_store};

    #[tokio::test]
    async fn heartbeat_upserts_and_reads_back() {
        both("heartbeat_upserts_and_reads_back", |store| async move {
            let t0 = Utc::now();
            let mut beat = InstanceBeat {
                name: "host:1".into(),
                version: "0.1.0".into(),
                started_at: t0,
                now: t0,
                lease_held: false,
                imap_connected: false,
                imap_contact_at: None,
                stopped: false,
            };
            store.beat(&beat).await.unwrap();
            beat.now = t0 + chrono::Duration::seconds(15);
            beat.lease_held = true;
            beat.imap_connected = true;
            beat.imap_contact_at = Some(beat.now);
            store.beat(&beat).await.unwrap();
            let rows = store.instances().await.unwrap();
            assert_eq!(rows.len(), 1);
            assert!(rows[0].lease_held && rows[0].imap_connected);
            assert_eq!(rows[0].imap_contact_at.map(ts), Some(ts(beat.now)));
            assert_eq!(ts(rows[0].started_at), ts(t0));
            assert_eq!(rows[0].stopped_at, None);
            beat.stopped = true;
            store.beat(&beat).await.unwrap();
            assert!(store.instances().await.unwrap()[0].stopped_at.is_some());
            // A day of silence: forgotten by the next beat of anyone.
            let other = InstanceBeat {
                name: "host:2".into(),
                now: t0 + chrono::Duration::days(2),
                stopped: false,
                ..beat
            };
            store.beat(&other).await.unwrap();
            let names: Vec<String> = store
                .instances()
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect();
            assert_eq!(names, ["host:2"]);
        })
        .await;
    }

    #[tokio::test]
    async fn audit_list_filters_by_subject_newest_last() {
        both(
            "audit_list_filters_by_subject_newest_last",
            |store| async move {
                let now = Utc::now();
                let mut tx = store.begin().await.unwrap();
                for (i, subject) in ["TE-2026-000001", "TE-2026-000002", "TE-2026-000001"]
                    .iter()
                    .enumerate()
                {
                    store
                        .append_audit(
                            &mut tx,
                            "os:alice",
                            "operator.read",
                            subject,
                            &serde_json::json!({"n": i}),
                            now,
                        )
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
                let rows = store.list_audit(Some("TE-2026-000001"), 10).await.unwrap();
                assert_eq!(rows.len(), 2);
                assert!(rows[0].id < rows[1].id);
                assert_eq!(rows[1].details, r#"{"n":2}"#);
                assert_eq!(store.list_audit(None, 2).await.unwrap().len(), 2);
                let head = store.audit_head().await.unwrap().unwrap();
                assert_eq!(head.id, rows[1].id);
                assert_eq!(
                    store.verify_audit().await.unwrap().last_hash,
                    Some(head.hash)
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn snapshot_lists_every_outbox_state_even_when_empty() {
        both(
            "snapshot_lists_every_outbox_state_even_when_empty",
            |store| async move {
                let snap = store.ops_snapshot().await.unwrap();
                let states: Vec<&str> = snap.outbox.iter().map(|(s, _)| s.as_str()).collect();
                assert_eq!(states, OUTBOX_STATES);
                assert!(snap.outbox.iter().all(|(_, n)| *n == 0));
                assert!(snap.oldest_pending.is_none() && snap.threads.is_empty());
                let since = Utc::now() - chrono::Duration::hours(24);
                assert!(
                    store
                        .quarantine_by_reason_since(since)
                        .await
                        .unwrap()
                        .is_empty()
                );
                assert_eq!(store.failed_outbox_since(since).await.unwrap(), 0);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn backup_copies_a_sqlite_database() {
        let (store, dir) = sqlite_store(2).await;
        let mut tx = store.begin().await.unwrap();
        store
            .append_audit(
                &mut tx,
                "system",
                "test",
                "x",
                &serde_json::json!({}),
                Utc::now(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let dest = dir.path().join("copy.db");
        store.backup_sqlite(&dest).await.unwrap();
        let copy = Store::connect(&format!("sqlite://{}", dest.display()), 1)
            .await
            .unwrap();
        assert_eq!(copy.sqlite_integrity().await.unwrap(), "ok");
        assert_eq!(copy.verify_audit().await.unwrap().rows, 1);
        // The file exists now: VACUUM INTO never overwrites.
        assert!(store.backup_sqlite(&dest).await.is_err());
    }

    #[tokio::test]
    async fn a_checkpoint_copies_the_log_into_the_database() {
        let (store, dir) = sqlite_store(2).await;
        let db = dir.path().join("teleavis.db");
        let before = std::fs::metadata(&db).unwrap().modified().unwrap();
        let mut tx = store.begin().await.unwrap();
        for i in 0..50 {
            let details = serde_json::json!({ "i": i, "pad": "x".repeat(2000) });
            store
                .append_audit(&mut tx, "system", "test", "x", &details, Utc::now())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let (log, copied) = store.checkpoint().await.unwrap().unwrap();
        assert!(log > 20, "the 100 KiB written are in the log: {log} frames");
        assert_eq!(copied, log, "all of it copied (nobody else reads)");
        assert!(std::fs::metadata(&db).unwrap().modified().unwrap() > before);
        assert_eq!(store.verify_audit().await.unwrap().rows, 50);
    }
}
