//! Raw per-thread rows for the `stats` command; grouping and formatting live in the command.
//!
//! The first answer of a thread is its earliest incoming message of kind `answer` (an expert's
//! reply, including a `#clore` message carrying the final answer if the intake records it as an
//! answer).

use chrono::{DateTime, Utc};

use super::error::Ctx;
use super::{Result, Store, col, col_ts, col_ts_opt, ts};

/// One thread, as `stats` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatsRow {
    /// Thread id.
    pub thread_id: String,
    /// Category id (the current one, after any transfer).
    pub category: String,
    /// The requérant's address.
    pub requester: String,
    /// The requérant's RPPS number.
    pub requester_rpps: Option<String>,
    /// Current status.
    pub status: String,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// First expert answer received.
    pub first_answer_at: Option<DateTime<Utc>>,
    /// The thread's own deadline (standard or urgent), when the desk set one.
    pub deadline_at: Option<DateTime<Utc>>,
    /// Closed at.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Threads opened in `[from, to)`, oldest first.
    pub async fn thread_stats_rows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ThreadStatsRow>> {
        let rows = sqlx::query(
            "SELECT t.id, t.category, t.requester, t.requester_rpps, t.status, t.created_at, \
             t.closed_at, (SELECT MIN(m.at) FROM thread_messages m WHERE m.thread_id = t.id \
             AND m.direction = 'in' AND m.kind = 'answer') AS first_answer_at, \
             d.deadline_at FROM threads t LEFT JOIN thread_deadlines d ON d.thread_id = t.id \
             WHERE t.created_at >= $1 AND t.created_at < $2 \
             ORDER BY t.created_at, t.id",
        )
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(&self.pool)
        .await
        .ctx("reading thread statistics")?;
        rows.iter()
            .map(|row| {
                Ok(ThreadStatsRow {
                    thread_id: col(row, "id")?,
                    category: col(row, "category")?,
                    requester: col(row, "requester")?,
                    requester_rpps: col(row, "requester_rpps")?,
                    status: col(row, "status")?,
                    created_at: col_ts(row, "created_at")?,
                    first_answer_at: col_ts_opt(row, "first_answer_at")?,
                    deadline_at: col_ts_opt(row, "deadline_at")?,
                    closed_at: col_ts_opt(row, "closed_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::both;
    use super::super::{NewThreadMessage, ThreadRow, parse_ts};

    fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
        parse_ts(s).unwrap()
    }

    #[tokio::test]
    async fn stats_rows_carry_first_answer() {
        both("stats", |store| async move {
            let mut tx = store.begin().await.unwrap();
            for (id, at) in [
                ("TE-2026-000001", "2026-03-01T08:00:00Z"),
                ("TE-2026-000002", "2026-03-02T08:00:00Z"),
                ("TE-2026-000003", "2026-04-01T08:00:00Z"),
            ] {
                let at = t(at);
                store
                    .insert_thread(
                        &mut tx,
                        &ThreadRow {
                            id: id.into(),
                            status: "en_cours".into(),
                            category: "infectio".into(),
                            requester: "dr.a@b".into(),
                            requester_name: None,
                            requester_rpps: Some("1".into()),
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
            }
            for (kind, dir, at) in [
                ("request", "in", "2026-03-01T08:00:00Z"),
                ("forward", "out", "2026-03-01T08:01:00Z"),
                ("answer", "out", "2026-03-01T09:00:00Z"),
                ("answer", "in", "2026-03-01T10:00:00Z"),
                ("answer", "in", "2026-03-01T09:30:00Z"),
            ] {
                store
                    .add_thread_message(
                        &mut tx,
                        &NewThreadMessage {
                            thread_id: "TE-2026-000001".into(),
                            direction: dir.parse().unwrap(),
                            kind: kind.parse().unwrap(),
                            from_addr: "x@y".into(),
                            to_addrs: vec!["z@y".into()],
                            at: t(at),
                            message_id: None,
                            author_name: None,
                            author_rpps: None,
                            body_text: None,
                            attachments_json: "[]".into(),
                            inbound_id: None,
                            outbox_id: None,
                        },
                    )
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let rows = store
                .thread_stats_rows(t("2026-03-01T00:00:00Z"), t("2026-04-01T08:00:00Z"))
                .await
                .unwrap();
            assert_eq!(rows.len(), 2);
            assert_eq!(rows[0].thread_id, "TE-2026-000001");
            assert_eq!(rows[0].first_answer_at, Some(t("2026-03-01T09:30:00Z")));
            assert_eq!(rows[1].first_answer_at, None);
            assert_eq!(rows[1].requester_rpps.as_deref(), Some("1"));
        })
        .await;
    }
}
