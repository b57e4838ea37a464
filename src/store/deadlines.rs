//! The desk's deadline of each thread: set at opening, stopped by the first expert action,
//! read by `threads show` and `threads list --overdue`.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use super::error::Ctx;
use super::{Result, Store, col, col_ts, col_ts_opt, ts};

/// A thread's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadDeadline {
    pub thread_id: String,
    pub urgent: bool,
    pub opened_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    /// When an answer, `#prendre`, `#clore` or `#annuler` stopped it.
    pub stopped_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records the deadline of a thread being opened (in its transaction).
    pub async fn insert_deadline(&self, tx: &mut AnyConnection, d: &ThreadDeadline) -> Result<()> {
        sqlx::query(
            "INSERT INTO thread_deadlines (thread_id, urgent, opened_at, deadline_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(d.thread_id.clone())
        .bind(i64::from(d.urgent))
        .bind(ts(d.opened_at))
        .bind(ts(d.deadline_at))
        .execute(&mut *tx)
        .await
        .ctx("recording a thread's deadline")?;
        Ok(())
    }

    /// Stops a thread's deadline (the first stop counts).
    pub async fn stop_deadline(
        &self,
        tx: &mut AnyConnection,
        thread_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE thread_deadlines SET stopped_at = $2 WHERE thread_id = $1 AND stopped_at IS NULL",
        )
        .bind(thread_id.to_owned())
        .bind(ts(at))
        .execute(&mut *tx)
        .await
        .ctx("stopping a thread's deadline")?;
        Ok(())
    }

    /// The deadline of a thread, if it has one.
    pub async fn deadline_of(&self, thread_id: &str) -> Result<Option<ThreadDeadline>> {
        Ok(self
            .deadlines(Some(thread_id), None)
            .await?
            .into_iter()
            .next())
    }

    /// Deadlines of one thread, or (with `overdue_at`) those past at that time and not stopped.
    pub async fn deadlines(
        &self,
        thread_id: Option<&str>,
        overdue_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<ThreadDeadline>> {
        let rows = sqlx::query(
            "SELECT thread_id, urgent, opened_at, deadline_at, stopped_at FROM thread_deadlines \
             WHERE ($1 = '' OR thread_id = $1) \
             AND ($2 = '' OR (deadline_at <= $2 AND stopped_at IS NULL)) ORDER BY deadline_at",
        )
        .bind(thread_id.unwrap_or_default().to_owned())
        .bind(overdue_at.map(ts).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .ctx("reading thread deadlines")?;
        rows.iter()
            .map(|r| {
                Ok(ThreadDeadline {
                    thread_id: col(r, "thread_id")?,
                    urgent: col::<i64>(r, "urgent")? != 0,
                    opened_at: col_ts(r, "opened_at")?,
                    deadline_at: col_ts(r, "deadline_at")?,
                    stopped_at: col_ts_opt(r, "stopped_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::both;
    use super::super::{ThreadRow, parse_ts};
    use super::ThreadDeadline;

    #[tokio::test]
    async fn overdue_until_stopped() {
        both("deadlines", |store| async move {
            let t = |s: &str| parse_ts(s).unwrap();
            let mut tx = store.begin().await.unwrap();
            for (id, due) in [
                ("TE-2026-000001", "2026-03-01T10:00:00Z"),
                ("TE-2026-000002", "2026-03-09T10:00:00Z"),
            ] {
                let at = t("2026-03-01T08:00:00Z");
                store
                    .insert_thread(
                        &mut tx,
                        &ThreadRow {
                            id: id.into(),
                            status: "nouvelle".into(),
                            category: "infectio".into(),
                            requester: "dr.a@b".into(),
                            requester_name: None,
                            requester_rpps: None,
                            taken_by: None,
                            form_json: "{}".into(),
                            previous_thread: None,
                            created_at: at,
                            updated_at: at,
                            closed_at: None,
                        },
                    )
                    .await
                    .unwrap();
                store
                    .insert_deadline(
                        &mut tx,
                        &ThreadDeadline {
                            thread_id: id.into(),
                            urgent: id.ends_with('1'),
                            opened_at: at,
                            deadline_at: t(due),
                            stopped_at: None,
                        },
                    )
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let now = Some(t("2026-03-02T00:00:00Z"));
            let due = store.deadlines(None, now).await.unwrap();
            assert_eq!(due.len(), 1);
            assert!(due[0].urgent && due[0].thread_id == "TE-2026-000001");
            let mut tx = store.begin().await.unwrap();
            store
                .stop_deadline(&mut tx, "TE-2026-000001", t("2026-03-01T11:00:00Z"))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert!(store.deadlines(None, now).await.unwrap().is_empty());
            let d = store.deadline_of("TE-2026-000001").await.unwrap().unwrap();
            assert_eq!(d.stopped_at, Some(t("2026-03-01T11:00:00Z")));
        })
        .await;
    }
}
