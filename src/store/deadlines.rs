//! The desk's deadline of each thread: set at opening, stopped by the first expert action,
//! read by `threads show` and `threads list --overdue`; its reminder (at the deadline) and
//! escalation (at twice it) are claimed here, once each.

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

/// Which follow-up of a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineStep {
    /// At the deadline, to the category's group.
    Reminder,
    /// At twice the deadline, to the escalation address.
    Escalation,
}

impl DeadlineStep {
    fn column(self) -> &'static str {
        match self {
            DeadlineStep::Reminder => "reminded_at",
            DeadlineStep::Escalation => "escalated_at",
        }
    }
}

/// A deadline of an open thread, not stopped, whose reminder or escalation may be due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeadline {
    pub thread_id: String,
    pub opened_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub reminded_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
}

impl PendingDeadline {
    /// Twice the deadline: `deadline_at + (deadline_at - opened_at)`.
    pub fn escalation_at(&self) -> DateTime<Utc> {
        self.deadline_at + (self.deadline_at - self.opened_at)
    }

    /// The steps due at `now` and not sent yet, in order.
    pub fn due_steps(&self, now: DateTime<Utc>) -> Vec<DeadlineStep> {
        let mut out = vec![];
        if self.reminded_at.is_none() && self.deadline_at <= now {
            out.push(DeadlineStep::Reminder);
        }
        if self.escalated_at.is_none() && self.escalation_at() <= now {
            out.push(DeadlineStep::Escalation);
        }
        out
    }
}

/// The thread statuses whose deadline still runs.
const OPEN: &str = "('nouvelle', 'en_cours')";

impl Store {
    /// The deadlines past at `now`, not stopped, of open threads, with a step not yet sent.
    pub async fn pending_deadlines(&self, now: DateTime<Utc>) -> Result<Vec<PendingDeadline>> {
        let sql = format!(
            "SELECT d.thread_id, d.opened_at, d.deadline_at, d.reminded_at, d.escalated_at \
             FROM thread_deadlines d JOIN threads t ON t.id = d.thread_id \
             WHERE d.stopped_at IS NULL AND d.deadline_at <= $1 AND t.status IN {OPEN} \
             AND (d.reminded_at IS NULL OR d.escalated_at IS NULL) ORDER BY d.deadline_at"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(now))
            .fetch_all(&self.pool)
            .await
            .ctx("reading the deadlines due")?;
        rows.iter()
            .map(|r| {
                Ok(PendingDeadline {
                    thread_id: col(r, "thread_id")?,
                    opened_at: col_ts(r, "opened_at")?,
                    deadline_at: col_ts(r, "deadline_at")?,
                    reminded_at: col_ts_opt(r, "reminded_at")?,
                    escalated_at: col_ts_opt(r, "escalated_at")?,
                })
            })
            .collect()
    }

    /// Marks `step` of a thread's deadline sent at `at`, in the transaction that queues it.
    /// False when it was already sent (by another instance: on PostgreSQL the row lock makes
    /// the second claim wait for the first's commit, then find the column set), or when the
    /// deadline was stopped or the thread closed meanwhile: then nothing must be sent.
    pub async fn claim_deadline_step(
        &self,
        tx: &mut AnyConnection,
        thread_id: &str,
        step: DeadlineStep,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let column = step.column();
        let sql = format!(
            "UPDATE thread_deadlines SET {column} = $2 WHERE thread_id = $1 \
             AND {column} IS NULL AND stopped_at IS NULL \
             AND thread_id IN (SELECT id FROM threads WHERE status IN {OPEN})"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(thread_id.to_owned())
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .ctx("claiming a deadline's reminder")?;
        Ok(done.rows_affected() == 1)
    }

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
    use super::{DeadlineStep, ThreadDeadline};

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

            // Reminders: only the running deadline is pending, and each step is claimed once.
            let late = t("2026-03-20T00:00:00Z");
            let pending = store.pending_deadlines(late).await.unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].thread_id, "TE-2026-000002");
            assert_eq!(
                pending[0].due_steps(late),
                [DeadlineStep::Reminder, DeadlineStep::Escalation]
            );
            assert_eq!(
                pending[0].due_steps(t("2026-03-10T00:00:00Z")),
                [DeadlineStep::Reminder]
            );
            let mut tx = store.begin().await.unwrap();
            for (id, step, first) in [
                ("TE-2026-000002", DeadlineStep::Reminder, true),
                ("TE-2026-000002", DeadlineStep::Reminder, false),
                ("TE-2026-000002", DeadlineStep::Escalation, true),
                ("TE-2026-000001", DeadlineStep::Reminder, false),
            ] {
                let claimed = store.claim_deadline_step(&mut tx, id, step, late).await;
                assert_eq!(claimed.unwrap(), first, "{id} {step:?}");
            }
            tx.commit().await.unwrap();
            assert!(store.pending_deadlines(late).await.unwrap().is_empty());
        })
        .await;
    }
}
