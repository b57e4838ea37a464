//! The store's boundary with the domain: a thread row decoded ONCE into a `thread::Thread`
//! (status, addresses, ids and the request form typed), and a `Thread` written back.

use sqlx::AnyConnection;

use super::{Result, Store, StoreError, ThreadRow, ThreadUpdate};
use crate::address::EmailAddress;
use crate::thread::{Status, Thread, ThreadId};

fn corrupt(column: &'static str, id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: format!("thread {id}: {what}"),
    }
}

impl TryFrom<ThreadRow> for Thread {
    type Error = StoreError;

    fn try_from(row: ThreadRow) -> Result<Thread> {
        let id = ThreadId::parse(&row.id).map_err(|e| corrupt("id", &row.id, e))?;
        let status = Status::parse(&row.status).map_err(|e| corrupt("status", &row.id, e))?;
        let requester =
            EmailAddress::parse(&row.requester).map_err(|e| corrupt("requester", &row.id, e))?;
        // By position only: serde's message could quote the patient data it choked on, and
        // errors reach logs and admin alerts.
        let form = serde_json::from_str(&row.form_json).map_err(|e| {
            corrupt(
                "form_json",
                &row.id,
                format_args!(
                    "stored request form unreadable (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let previous = match &row.previous_thread {
            Some(p) => {
                Some(ThreadId::parse(p).map_err(|e| corrupt("previous_thread", &row.id, e))?)
            }
            None => None,
        };
        Ok(Thread {
            id,
            status,
            category: row.category,
            requester,
            requester_name: row.requester_name,
            requester_rpps: row.requester_rpps,
            taken_by: row.taken_by,
            form,
            previous,
            created_at: row.created_at,
            updated_at: row.updated_at,
            closed_at: row.closed_at,
        })
    }
}

impl TryFrom<&Thread> for ThreadRow {
    type Error = StoreError;

    fn try_from(t: &Thread) -> Result<ThreadRow> {
        let form_json = serde_json::to_string(&t.form).map_err(|e| StoreError::Invalid {
            what: "request form",
            detail: format!("thread {}: {:?}", t.id, e.classify()),
        })?;
        Ok(ThreadRow {
            id: t.id.to_string(),
            status: t.status.as_str().into(),
            category: t.category.clone(),
            requester: t.requester.to_string(),
            requester_name: t.requester_name.clone(),
            requester_rpps: t.requester_rpps.clone(),
            taken_by: t.taken_by.clone(),
            form_json,
            previous_thread: t.previous.as_ref().map(ThreadId::to_string),
            created_at: t.created_at,
            updated_at: t.updated_at,
            closed_at: t.closed_at,
        })
    }
}

/// What the store keeps of a file a thread message carried (`attachments_json` holds a list
/// of them): enough for the compte-rendu, never the bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachmentMeta {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

impl AttachmentMeta {
    pub fn of(name: &str, content_type: &str, bytes: &[u8]) -> AttachmentMeta {
        use sha2::Digest as _;
        AttachmentMeta {
            name: name.to_string(),
            content_type: content_type.to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    /// The `attachments_json` column's text.
    pub fn to_json(list: &[AttachmentMeta]) -> String {
        serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
    }

    /// The list an `attachments_json` column holds; an unreadable one reads as empty.
    pub fn from_json(text: &str) -> Vec<AttachmentMeta> {
        serde_json::from_str(text).unwrap_or_default()
    }
}

impl Store {
    /// One thread, decoded.
    pub async fn thread(&self, id: &ThreadId) -> Result<Option<Thread>> {
        self.get_thread(&id.to_string())
            .await?
            .map(Thread::try_from)
            .transpose()
    }

    /// One thread, decoded, read inside the caller's transaction.
    pub async fn thread_in(
        &self,
        conn: &mut AnyConnection,
        id: &ThreadId,
    ) -> Result<Option<Thread>> {
        self.get_thread_in(conn, &id.to_string())
            .await?
            .map(Thread::try_from)
            .transpose()
    }

    /// Open threads without activity since `before`, decoded, oldest first. A row that cannot
    /// be decoded is left out (and logged by id): it stays open for an operator to see.
    pub async fn idle(&self, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Thread>> {
        let mut out = vec![];
        for row in self.idle_threads(before).await? {
            let id = row.id.clone();
            match Thread::try_from(row) {
                Ok(t) => out.push(t),
                Err(e) => tracing::warn!(thread = %id, error = %e, "idle thread unreadable"),
            }
        }
        Ok(out)
    }

    /// Inserts a new thread.
    pub async fn open_thread(&self, conn: &mut AnyConnection, thread: &Thread) -> Result<()> {
        self.insert_thread(conn, &ThreadRow::try_from(thread)?)
            .await
    }

    /// Writes a thread's mutable part: status, category, expert in charge, times.
    pub async fn save_thread(&self, conn: &mut AnyConnection, thread: &Thread) -> Result<()> {
        let id = thread.id.to_string();
        self.update_thread(
            conn,
            &ThreadUpdate {
                id: &id,
                status: thread.status.as_str(),
                category: &thread.category,
                taken_by: thread.taken_by.as_deref(),
                updated_at: thread.updated_at,
                closed_at: thread.closed_at,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::RequestForm;

    #[test]
    fn an_unreadable_stored_form_is_reported_without_its_content() {
        let now = chrono::Utc::now();
        let mut row = crate::store::testutil::sample_thread("TE-2026-000042", "nouvelle", now);
        // serde's own message would quote the bad value: "unknown variant `DUPONT`…".
        row.form_json = r#"{"patient":{"birth_name":"x","sex":"DUPONT"}}"#.into();
        let raw = serde_json::from_str::<RequestForm>(&row.form_json).unwrap_err();
        assert!(
            raw.to_string().contains("DUPONT"),
            "the case must be one serde would leak"
        );
        let err = Thread::try_from(row).unwrap_err().to_string();
        assert!(err.contains("TE-2026-000042"), "{err}");
        assert!(
            !err.contains("DUPONT") && !err.contains("birth_name"),
            "{err}"
        );
    }

    #[test]
    fn attachment_metadata_round_trips_through_its_column() {
        let list = vec![AttachmentMeta::of(
            "bilan.pdf",
            "application/pdf",
            b"%PDF-1.4",
        )];
        let text = AttachmentMeta::to_json(&list);
        assert_eq!(AttachmentMeta::from_json(&text), list);
        assert_eq!(list[0].size, 8);
        assert_eq!(list[0].sha256.len(), 64);
        assert!(AttachmentMeta::from_json("not json").is_empty());
    }
}
