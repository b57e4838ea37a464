//! Retention: closed threads removed with their messages, outgoing mail and raw inbound bytes
//! ([`Store::purge_closed_before`]), the inbound rows kept as tombstones.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;
use tracing::info;

use super::error::Ctx;
use super::{Result, Store, ts};

/// What [`Store::purge_closed_before`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Ids of the threads removed.
    pub threads: Vec<String>,
    /// Thread messages removed.
    pub messages: u64,
    /// Inbound messages whose raw bytes were wiped.
    pub inbound: u64,
    /// Outbox rows (sent or failed) removed.
    pub outbox: u64,
}

impl Store {
    /// Retention: removes threads closed (`terminee`, `annulee`) before `before`, with their
    /// messages and their sent/failed outbox rows (which hold cleartext), and wipes the raw bytes
    /// of the inbound mail applied to them. The inbound row itself stays as a tombstone
    /// (`purged_at`, SHA-256 and Message-ID kept, no content) so that a copy of the message
    /// seen again is still recognised as a duplicate. A thread with outgoing mail still
    /// `pending` or `held` is kept (never lose a message). The audit trail is never touched:
    /// one `purge` audit row records what was removed. Call inside a transaction.
    pub async fn purge_closed_before(
        &self,
        conn: &mut AnyConnection,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<PurgeReport> {
        let threads: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM threads t WHERE status IN ('terminee', 'annulee') \
             AND closed_at IS NOT NULL AND closed_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.thread_id = t.id \
                             AND o.status IN ('pending', 'held')) \
             ORDER BY id",
        )
        .bind(ts(before))
        .fetch_all(&mut *conn)
        .await
        .ctx("selecting closed threads to purge")?;

        let mut report = PurgeReport::default();
        for thread in &threads {
            // Raw mail first, while thread_messages still links it to the thread.
            sqlx::query(
                "DELETE FROM inbound_raw WHERE inbound_id IN (SELECT id FROM inbound \
                 WHERE purged_at IS NULL AND (thread_id = $1 OR id IN (SELECT inbound_id \
                 FROM thread_messages WHERE thread_id = $1 AND inbound_id IS NOT NULL)))",
            )
            .bind(thread)
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("purging the raw mail of thread {thread}"))?;
            report.inbound += sqlx::query(
                "UPDATE inbound SET purged_at = $2 WHERE purged_at IS NULL \
                 AND (thread_id = $1 OR id IN (SELECT inbound_id FROM thread_messages \
                 WHERE thread_id = $1 AND inbound_id IS NOT NULL))",
            )
            .bind(thread)
            .bind(ts(now))
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("purging the raw mail of thread {thread}"))?
            .rows_affected();
            report.messages += sqlx::query("DELETE FROM thread_messages WHERE thread_id = $1")
                .bind(thread)
                .execute(&mut *conn)
                .await
                .with_ctx(|| format!("purging the messages of thread {thread}"))?
                .rows_affected();
            report.outbox += sqlx::query(
                "DELETE FROM outbox WHERE thread_id = $1 AND status IN ('sent', 'failed')",
            )
            .bind(thread)
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("purging the outgoing mail of thread {thread}"))?
            .rows_affected();
            sqlx::query("DELETE FROM threads WHERE id = $1")
                .bind(thread)
                .execute(&mut *conn)
                .await
                .with_ctx(|| format!("purging thread {thread}"))?;
        }
        report.threads = threads;

        let details = json!({
            "closed_before": ts(before),
            "threads": report.threads,
            "messages": report.messages,
            "inbound": report.inbound,
            "outbox": report.outbox,
        });
        self.append_audit(conn, "system", "purge", "threads", &details, now)
            .await?;
        info!(
            threads = report.threads.len(),
            messages = report.messages,
            inbound = report.inbound,
            outbox = report.outbox,
            "closed threads purged"
        );
        Ok(report)
    }
}
