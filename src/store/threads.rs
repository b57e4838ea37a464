//! Threads (`TE-<year>-<seq>`), their messages, id counters and lookups (the retention purge
//! is in `purge.rs`).
//!
//! Statuses, categories and message kinds are kept as the text the `thread` module defines
//! (`nouvelle`, `en_cours`, `terminee`, `annulee`; `request`, `answer`…); the store only
//! interprets them for [`Store::idle_threads`] and `Store::purge_closed_before`.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use super::error::Ctx;
use super::{
    Direction, MessageKind, Result, Store, StoreError, col, col_parsed, col_ts, col_ts_opt,
    join_list, normalize_message_id, split_list, ts,
};

/// A thread row.
#[derive(Clone, PartialEq, Eq)]
pub struct ThreadRow {
    /// `TE-2026-000042`.
    pub id: String,
    /// `nouvelle` | `en_cours` | `terminee` | `annulee`.
    pub status: String,
    /// Category id.
    pub category: String,
    /// The requérant's address.
    pub requester: String,
    /// The requérant's name, from the certificate or the form.
    pub requester_name: Option<String>,
    /// The requérant's RPPS number.
    pub requester_rpps: Option<String>,
    /// Expert who took the case (`#prendre`).
    pub taken_by: Option<String>,
    /// The parsed request form, JSON (patient data).
    pub form_json: String,
    /// Thread this one continues, if any.
    pub previous_thread: Option<String>,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Closed (`terminee` or `annulee`) at.
    pub closed_at: Option<DateTime<Utc>>,
}

/// The mutable part of a thread ([`Store::update_thread`]); every field is written as given.
#[derive(Debug, Clone, Copy)]
pub struct ThreadUpdate<'a> {
    /// Thread id.
    pub id: &'a str,
    /// New status.
    pub status: &'a str,
    /// New category (`#transferer`).
    pub category: &'a str,
    /// Expert who took it.
    pub taken_by: Option<&'a str>,
    /// Time of this change.
    pub updated_at: DateTime<Utc>,
    /// When closed, if closed.
    pub closed_at: Option<DateTime<Utc>>,
}

/// A message of a thread, in or out.
#[derive(Clone, PartialEq, Eq)]
pub struct NewThreadMessage {
    /// Thread id.
    pub thread_id: String,
    pub direction: Direction,
    pub kind: MessageKind,
    /// Sender address.
    pub from_addr: String,
    /// Recipient addresses.
    pub to_addrs: Vec<String>,
    /// When received or queued.
    pub at: DateTime<Utc>,
    /// Its Message-ID (normalised by the store).
    pub message_id: Option<String>,
    /// Author's name (from the certificate).
    pub author_name: Option<String>,
    /// Author's RPPS number.
    pub author_rpps: Option<String>,
    /// Text, quoted history stripped (patient data).
    pub body_text: Option<String>,
    /// `[{name, content_type, size, sha256}]`.
    pub attachments_json: String,
    /// Inbound row it came from.
    pub inbound_id: Option<i64>,
    /// Outbox row it went out as.
    pub outbox_id: Option<i64>,
}

/// A stored thread message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadMessageRow {
    /// Row id.
    pub id: i64,
    /// Everything else, as inserted (Message-ID normalised).
    pub message: NewThreadMessage,
}

macro_rules! thread_cols {
    () => {
        "id, status, category, requester, requester_name, requester_rpps, taken_by, form_json, \
         previous_thread, created_at, updated_at, closed_at"
    };
}

macro_rules! message_cols {
    () => {
        "id, thread_id, direction, kind, from_addr, to_addrs, at, message_id, author_name, \
         author_rpps, body_text, attachments_json, inbound_id, outbox_id"
    };
}

fn thread_from_row(row: &AnyRow) -> Result<ThreadRow> {
    Ok(ThreadRow {
        id: col(row, "id")?,
        status: col(row, "status")?,
        category: col(row, "category")?,
        requester: col(row, "requester")?,
        requester_name: col(row, "requester_name")?,
        requester_rpps: col(row, "requester_rpps")?,
        taken_by: col(row, "taken_by")?,
        form_json: col(row, "form_json")?,
        previous_thread: col(row, "previous_thread")?,
        created_at: col_ts(row, "created_at")?,
        updated_at: col_ts(row, "updated_at")?,
        closed_at: col_ts_opt(row, "closed_at")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<ThreadMessageRow> {
    let to: String = col(row, "to_addrs")?;
    Ok(ThreadMessageRow {
        id: col(row, "id")?,
        message: NewThreadMessage {
            thread_id: col(row, "thread_id")?,
            direction: col_parsed(row, "direction")?,
            kind: col_parsed(row, "kind")?,
            from_addr: col(row, "from_addr")?,
            to_addrs: split_list(&to),
            at: col_ts(row, "at")?,
            message_id: col(row, "message_id")?,
            author_name: col(row, "author_name")?,
            author_rpps: col(row, "author_rpps")?,
            body_text: col(row, "body_text")?,
            attachments_json: col(row, "attachments_json")?,
            inbound_id: col(row, "inbound_id")?,
            outbox_id: col(row, "outbox_id")?,
        },
    })
}

impl Store {
    /// The next sequence number of `year` (1, 2, …), for `TE-<year>-<seq>`. One atomic upsert:
    /// concurrent transactions serialise on the year's counter row (PostgreSQL row lock,
    /// SQLite write lock), and a rolled-back transaction gives its number back.
    pub async fn next_thread_seq(&self, conn: &mut AnyConnection, year: i32) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO thread_counters (year, last) VALUES ($1, 1) \
             ON CONFLICT (year) DO UPDATE SET last = thread_counters.last + 1 RETURNING last",
        )
        .bind(i64::from(year))
        .fetch_one(&mut *conn)
        .await
        .with_ctx(|| format!("allocating a thread number for {year}"))
    }

    /// Inserts a new thread.
    pub async fn insert_thread(&self, conn: &mut AnyConnection, thread: &ThreadRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO threads (id, status, category, requester, requester_name, \
             requester_rpps, taken_by, form_json, previous_thread, created_at, updated_at, \
             closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&thread.id)
        .bind(&thread.status)
        .bind(&thread.category)
        .bind(&thread.requester)
        .bind(&thread.requester_name)
        .bind(&thread.requester_rpps)
        .bind(&thread.taken_by)
        .bind(&thread.form_json)
        .bind(&thread.previous_thread)
        .bind(ts(thread.created_at))
        .bind(ts(thread.updated_at))
        .bind(thread.closed_at.map(ts))
        .execute(&mut *conn)
        .await
        .with_ctx(|| format!("inserting thread {}", thread.id))?;
        Ok(())
    }

    /// One thread.
    pub async fn get_thread(&self, id: &str) -> Result<Option<ThreadRow>> {
        sqlx::query(concat!(
            "SELECT ",
            thread_cols!(),
            " FROM threads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .with_ctx(|| format!("reading thread {id}"))?
        .as_ref()
        .map(thread_from_row)
        .transpose()
    }

    /// One thread, read inside the caller's transaction (sees its uncommitted changes).
    pub async fn get_thread_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<Option<ThreadRow>> {
        sqlx::query(concat!(
            "SELECT ",
            thread_cols!(),
            " FROM threads WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .with_ctx(|| format!("reading thread {id}"))?
        .as_ref()
        .map(thread_from_row)
        .transpose()
    }

    /// The messages of a thread in time order, inside the caller's transaction.
    pub async fn thread_messages_in(
        &self,
        conn: &mut AnyConnection,
        thread_id: &str,
    ) -> Result<Vec<ThreadMessageRow>> {
        sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM thread_messages WHERE thread_id = $1 ORDER BY at, id"
        ))
        .bind(thread_id)
        .fetch_all(&mut *conn)
        .await
        .with_ctx(|| format!("reading the messages of thread {thread_id}"))?
        .iter()
        .map(message_from_row)
        .collect()
    }

    /// Writes the mutable part of a thread.
    pub async fn update_thread(
        &self,
        conn: &mut AnyConnection,
        update: &ThreadUpdate<'_>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE threads SET status = $2, category = $3, taken_by = $4, updated_at = $5, \
             closed_at = $6 WHERE id = $1",
        )
        .bind(update.id)
        .bind(update.status)
        .bind(update.category)
        .bind(update.taken_by)
        .bind(ts(update.updated_at))
        .bind(update.closed_at.map(ts))
        .execute(&mut *conn)
        .await
        .with_ctx(|| format!("updating thread {}", update.id))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "thread",
                key: update.id.to_owned(),
            });
        }
        Ok(())
    }

    /// Threads, optionally filtered by status and category, oldest first.
    pub async fn list_threads(
        &self,
        status: Option<&str>,
        category: Option<&str>,
    ) -> Result<Vec<ThreadRow>> {
        sqlx::query(concat!(
            "SELECT ",
            thread_cols!(),
            " FROM threads WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR category = $2) \
             ORDER BY created_at, id"
        ))
        .bind(status)
        .bind(category)
        .fetch_all(&self.pool)
        .await
        .ctx("listing threads")?
        .iter()
        .map(thread_from_row)
        .collect()
    }

    /// Records a message of a thread; returns its id.
    pub async fn add_thread_message(
        &self,
        conn: &mut AnyConnection,
        message: &NewThreadMessage,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO thread_messages (thread_id, direction, kind, from_addr, to_addrs, at, \
             message_id, author_name, author_rpps, body_text, attachments_json, inbound_id, \
             outbox_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             RETURNING id",
        )
        .bind(&message.thread_id)
        .bind(message.direction.as_str())
        .bind(message.kind.as_str())
        .bind(&message.from_addr)
        .bind(join_list("recipient list", &message.to_addrs)?)
        .bind(ts(message.at))
        .bind(message.message_id.as_deref().and_then(normalize_message_id))
        .bind(&message.author_name)
        .bind(&message.author_rpps)
        .bind(&message.body_text)
        .bind(&message.attachments_json)
        .bind(message.inbound_id)
        .bind(message.outbox_id)
        .fetch_one(&mut *conn)
        .await
        .with_ctx(|| format!("recording a message of thread {}", message.thread_id))
    }

    /// The messages of a thread in time order.
    pub async fn thread_messages(&self, thread_id: &str) -> Result<Vec<ThreadMessageRow>> {
        sqlx::query(concat!(
            "SELECT ",
            message_cols!(),
            " FROM thread_messages WHERE thread_id = $1 ORDER BY at, id"
        ))
        .bind(thread_id)
        .fetch_all(&self.pool)
        .await
        .with_ctx(|| format!("reading the messages of thread {thread_id}"))?
        .iter()
        .map(message_from_row)
        .collect()
    }

    /// The thread a reply belongs to, from its `In-Reply-To` and `References` ids: pass them in
    /// order of preference (In-Reply-To first, then References from the last). Matches the
    /// Message-IDs of thread messages (received and sent) and of queued outgoing mail; the first
    /// id of `message_ids` that matches wins. Ids in any form (normalised).
    pub async fn find_thread_by_message_ids(
        &self,
        message_ids: &[String],
    ) -> Result<Option<String>> {
        let ids: Vec<String> = message_ids
            .iter()
            .filter_map(|m| normalize_message_id(m))
            .take(200)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let placeholders = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Only numbered placeholders are interpolated: the values themselves are bound.
        let sql = format!(
            "SELECT message_id, thread_id FROM thread_messages WHERE message_id IN ({placeholders}) \
             UNION ALL SELECT message_id, thread_id FROM outbox \
             WHERE thread_id IS NOT NULL AND message_id IN ({placeholders})"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in &ids {
            query = query.bind(id);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .ctx("matching Message-IDs to a thread")?;
        let mut found: Vec<(String, String)> = Vec::with_capacity(rows.len());
        for row in &rows {
            found.push((col(row, "message_id")?, col(row, "thread_id")?));
        }
        Ok(ids.iter().find_map(|id| {
            found
                .iter()
                .find(|(mid, _)| mid == id)
                .map(|(_, thread)| thread.clone())
        }))
    }

    /// Open threads (`nouvelle`, `en_cours`) without activity since `before`, oldest first.
    pub async fn idle_threads(&self, before: DateTime<Utc>) -> Result<Vec<ThreadRow>> {
        sqlx::query(concat!(
            "SELECT ",
            thread_cols!(),
            " FROM threads WHERE status IN ('nouvelle', 'en_cours') AND updated_at < $1 \
             ORDER BY updated_at, id"
        ))
        .bind(ts(before))
        .fetch_all(&self.pool)
        .await
        .ctx("listing idle threads")?
        .iter()
        .map(thread_from_row)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::testutil::{both, sample_inbound, sample_thread as thread};
    use super::super::{InboundOutcome, NewOutgoing, parse_ts};
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_ts(s).unwrap()
    }

    fn message(thread_id: &str, kind: &str, at: DateTime<Utc>, mid: &str) -> NewThreadMessage {
        NewThreadMessage {
            thread_id: thread_id.into(),
            direction: "in".parse().unwrap(),
            kind: kind.parse().unwrap(),
            from_addr: "dr.a@b.mssante.fr".into(),
            to_addrs: vec!["teleexpertise@chr.mssante.fr".into()],
            at,
            message_id: Some(mid.into()),
            author_name: None,
            author_rpps: None,
            body_text: Some("texte".into()),
            attachments_json: "[]".into(),
            inbound_id: None,
            outbox_id: None,
        }
    }

    #[tokio::test]
    async fn thread_seq_increments_per_year() {
        both("thread_seq", |store| async move {
            let mut tx = store.begin().await.unwrap();
            assert_eq!(store.next_thread_seq(&mut tx, 2026).await.unwrap(), 1);
            assert_eq!(store.next_thread_seq(&mut tx, 2026).await.unwrap(), 2);
            assert_eq!(store.next_thread_seq(&mut tx, 2027).await.unwrap(), 1);
            tx.commit().await.unwrap();
            // A rolled-back allocation is given back.
            let mut tx = store.begin().await.unwrap();
            assert_eq!(store.next_thread_seq(&mut tx, 2026).await.unwrap(), 3);
            tx.rollback().await.unwrap();
            let mut tx = store.begin().await.unwrap();
            assert_eq!(store.next_thread_seq(&mut tx, 2026).await.unwrap(), 3);
            tx.commit().await.unwrap();
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thread_seq_is_unique_under_concurrency() {
        both("thread_seq_concurrent", |store| async move {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..10 {
                        let mut tx = store.begin().await.unwrap();
                        let n = store.next_thread_seq(&mut tx, 2026).await.unwrap();
                        tokio::task::yield_now().await;
                        tx.commit().await.unwrap();
                        got.push(n);
                    }
                    got
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all.sort_unstable();
            assert_eq!(all, (1..=40).collect::<Vec<i64>>());
        })
        .await;
    }

    #[tokio::test]
    async fn threads_messages_and_lookups() {
        both("threads_crud", |store| async move {
            let t0 = t("2026-11-27T10:00:00Z");
            let mut tx = store.begin().await.unwrap();
            store
                .insert_thread(&mut tx, &thread("TE-2026-000001", "nouvelle", t0))
                .await
                .unwrap();
            let mut other = thread(
                "TE-2026-000002",
                "en_cours",
                t0 + chrono::Duration::hours(1),
            );
            other.category = "cardio".into();
            store.insert_thread(&mut tx, &other).await.unwrap();
            // Messages inserted out of time order come back in time order.
            let m2 = message(
                "TE-2026-000001",
                "answer",
                t0 + chrono::Duration::hours(2),
                "r@x",
            );
            let m1 = message("TE-2026-000001", "request", t0, "<q@x>");
            store.add_thread_message(&mut tx, &m2).await.unwrap();
            store.add_thread_message(&mut tx, &m1).await.unwrap();
            let q = store
                .enqueue(
                    &mut tx,
                    &NewOutgoing {
                        thread_id: Some("TE-2026-000002".into()),
                        kind: "forward".parse().unwrap(),
                        envelope_from: "g@x".into(),
                        recipients: vec!["cardio@x".into()],
                    },
                    "x",
                    t0,
                    |mid| Ok::<_, std::io::Error>(mid.as_bytes().to_vec()),
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();

            let got = store.get_thread("TE-2026-000001").await.unwrap().unwrap();
            assert_eq!(got, thread("TE-2026-000001", "nouvelle", t0));
            assert!(store.get_thread("TE-2026-999999").await.unwrap().is_none());

            let msgs = store.thread_messages("TE-2026-000001").await.unwrap();
            assert_eq!(msgs.len(), 2);
            assert_eq!(msgs[0].message.kind, "request");
            assert_eq!(msgs[0].message.message_id.as_deref(), Some("<q@x>"));
            assert_eq!(msgs[1].message.message_id.as_deref(), Some("<r@x>"));
            assert_eq!(msgs[1].message.to_addrs, m2.to_addrs);

            let all = store.list_threads(None, None).await.unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(
                store
                    .list_threads(Some("en_cours"), None)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                store
                    .list_threads(None, Some("cardio"))
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                store
                    .list_threads(Some("nouvelle"), Some("cardio"))
                    .await
                    .unwrap()
                    .len(),
                0
            );

            // Reply matching: first id in preference order that matches wins; outbox counts.
            let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            assert_eq!(
                store
                    .find_thread_by_message_ids(&ids(&["<nope@x>", "q@x"]))
                    .await
                    .unwrap(),
                Some("TE-2026-000001".into())
            );
            assert_eq!(
                store
                    .find_thread_by_message_ids(&ids(&[q.message_id.as_str(), "<q@x>"]))
                    .await
                    .unwrap(),
                Some("TE-2026-000002".into())
            );
            assert_eq!(
                store
                    .find_thread_by_message_ids(&ids(&["<nope@x>"]))
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(store.find_thread_by_message_ids(&[]).await.unwrap(), None);

            // Update, idle threads.
            let later = t0 + chrono::Duration::days(3);
            let mut tx = store.begin().await.unwrap();
            store
                .update_thread(
                    &mut tx,
                    &ThreadUpdate {
                        id: "TE-2026-000002",
                        status: "terminee",
                        category: "cardio",
                        taken_by: Some("dr.b@x"),
                        updated_at: later,
                        closed_at: Some(later),
                    },
                )
                .await
                .unwrap();
            let missing = ThreadUpdate {
                id: "TE-2026-999999",
                status: "terminee",
                category: "x",
                taken_by: None,
                updated_at: later,
                closed_at: None,
            };
            assert!(matches!(
                store.update_thread(&mut tx, &missing).await,
                Err(StoreError::NotFound { .. })
            ));
            tx.commit().await.unwrap();
            let got = store.get_thread("TE-2026-000002").await.unwrap().unwrap();
            assert_eq!(
                (got.status.as_str(), got.closed_at),
                ("terminee", Some(later))
            );
            assert_eq!(got.taken_by.as_deref(), Some("dr.b@x"));
            let idle = store
                .idle_threads(t0 + chrono::Duration::days(1))
                .await
                .unwrap();
            assert_eq!(
                idle.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
                vec!["TE-2026-000001"]
            );
            assert!(store.idle_threads(t0).await.unwrap().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn purge_removes_closed_threads_and_raw_mail_but_keeps_audit() {
        both("purge", |store| async move {
            let t0 = t("2026-01-10T10:00:00Z");
            let closed = t("2026-02-01T10:00:00Z");
            let mut tx = store.begin().await.unwrap();
            // Old closed thread with raw mail (moved) and a sent outbox row: purged.
            let mut old = thread("TE-2026-000001", "terminee", t0);
            old.closed_at = Some(closed);
            store.insert_thread(&mut tx, &old).await.unwrap();
            let in1 = store
                .insert_inbound(&mut tx, &sample_inbound(1))
                .await
                .unwrap();
            let mut m = message(&old.id, "request", t0, "<m1@b>");
            m.inbound_id = Some(in1);
            store.add_thread_message(&mut tx, &m).await.unwrap();
            let out = NewOutgoing {
                thread_id: Some(old.id.clone()),
                kind: "report".parse().unwrap(),
                envelope_from: "g@x".into(),
                recipients: vec!["dr.a@b".into()],
            };
            let q1 = store
                .enqueue(&mut tx, &out, "x", t0, |mid| {
                    Ok::<_, std::io::Error>(mid.into())
                })
                .await
                .unwrap();
            store.mark_sent(&mut tx, q1.id, t0).await.unwrap();
            // Old closed thread with a pending outbox row: kept.
            let mut pending = thread("TE-2026-000002", "annulee", t0);
            pending.closed_at = Some(closed);
            store.insert_thread(&mut tx, &pending).await.unwrap();
            let mut out2 = out.clone();
            out2.thread_id = Some(pending.id.clone());
            store
                .enqueue(&mut tx, &out2, "x", t0, |mid| {
                    Ok::<_, std::io::Error>(mid.into())
                })
                .await
                .unwrap();
            // Recently closed and open threads: kept.
            let mut recent = thread("TE-2026-000003", "terminee", t0);
            recent.closed_at = Some(t("2026-06-01T00:00:00Z"));
            store.insert_thread(&mut tx, &recent).await.unwrap();
            store
                .insert_thread(&mut tx, &thread("TE-2026-000004", "en_cours", t0))
                .await
                .unwrap();
            // A quarantined message about the old thread (linked by thread_id only): wiped too.
            let in2 = store
                .insert_inbound(&mut tx, &sample_inbound(2))
                .await
                .unwrap();
            let quarantined = InboundOutcome {
                outcome: crate::store::InboundStatus::Quarantined,
                reason: Some("not_a_participant"),
                thread_id: Some(&old.id),
                ..InboundOutcome::new(crate::store::InboundStatus::Stored)
            };
            store
                .set_inbound_outcome(&mut tx, in2, &quarantined)
                .await
                .unwrap();
            // The recent thread's request: untouched.
            let in3 = store
                .insert_inbound(&mut tx, &sample_inbound(3))
                .await
                .unwrap();
            let mut m3 = message(&recent.id, "request", t0, "<m3@b>");
            m3.inbound_id = Some(in3);
            store.add_thread_message(&mut tx, &m3).await.unwrap();
            store
                .append_audit(
                    &mut tx,
                    "intake",
                    "thread_opened",
                    &old.id,
                    &serde_json::json!({}),
                    t0,
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            store.mark_moved(in1, t0).await.unwrap();

            let mut tx = store.begin().await.unwrap();
            let report = store
                .purge_closed_before(
                    &mut tx,
                    t("2026-03-01T00:00:00Z"),
                    t("2026-06-02T00:00:00Z"),
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(report.threads, vec!["TE-2026-000001".to_string()]);
            assert_eq!((report.messages, report.inbound, report.outbox), (1, 2, 1));
            assert!(
                store
                    .get_inbound(in2)
                    .await
                    .unwrap()
                    .unwrap()
                    .raw
                    .is_empty()
            );
            let kept = store.get_inbound(in3).await.unwrap().unwrap();
            assert_eq!(
                (kept.raw, kept.meta.purged_at),
                (sample_inbound(3).raw.into_owned(), None)
            );
            assert_eq!(store.thread_messages(&recent.id).await.unwrap().len(), 1);

            assert!(store.get_thread("TE-2026-000001").await.unwrap().is_none());
            assert!(
                store
                    .thread_messages("TE-2026-000001")
                    .await
                    .unwrap()
                    .is_empty()
            );
            let tomb = store.get_inbound(in1).await.unwrap().unwrap();
            assert!(tomb.raw.is_empty());
            assert_eq!(tomb.meta.purged_at, Some(t("2026-06-02T00:00:00Z")));
            assert_eq!(tomb.meta.sha256, sample_inbound(1).sha256);
            // Still a duplicate if the same bytes come back.
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .insert_inbound(&mut tx, &sample_inbound(1))
                    .await
                    .is_err()
            );
            tx.rollback().await.unwrap();
            assert!(store.get_outbox(q1.id).await.unwrap().is_none());
            let kept: HashSet<String> = store
                .list_threads(None, None)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect();
            assert_eq!(
                kept,
                ["TE-2026-000002", "TE-2026-000003", "TE-2026-000004"]
                    .map(String::from)
                    .into()
            );
            // The audit keeps the old row and gains a purge row; the chain still verifies.
            let audit = store.verify_audit().await.unwrap();
            assert_eq!(audit.rows, 2);
            assert_eq!(audit.first_bad, None);
            let action: String =
                sqlx::query_scalar("SELECT action FROM audit ORDER BY id DESC LIMIT 1")
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(action, "purge");
        })
        .await;
    }
}
