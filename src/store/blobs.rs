//! Raw mail (received and to send) in chunks of a table of its own: written once, never updated.
//!
//! **Why a table beside the row.** SQLite rewrites a whole record, overflow pages included, on
//! every UPDATE of any of its columns: with the bytes in `inbound` and `outbox`, recording an
//! outcome, a claim or a send rewrote the message each time (about 1 MB of WAL per 100 KiB
//! request). Here the rows that change stay small.
//!
//! **Why chunks.** The Any driver copies every bound or decoded value (twice on the way in):
//! a 25 MiB message bound whole cost 50 MiB more than the message. A chunk of [`CHUNK`] bytes at
//! a time keeps those copies small; a message is read back into one buffer of its exact size.

use sqlx::{AnyConnection, AnyPool};

use super::error::Ctx;
use super::{Result, to_i64};

/// Bytes per chunk: large enough that a typical request is one row, small enough that the
/// driver's copies stay far below the message.
pub(crate) const CHUNK: usize = 1 << 20;

/// Whose bytes: each owner table has its chunk table (`ON DELETE CASCADE`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Blob {
    /// `inbound_raw`: a message exactly as fetched.
    Inbound,
    /// `outbox_raw`: the cleartext message to sign, encrypt and send.
    Outbox,
}

impl Blob {
    fn insert_sql(self) -> &'static str {
        match self {
            Blob::Inbound => "INSERT INTO inbound_raw (inbound_id, seq, bytes) VALUES ($1, $2, $3)",
            Blob::Outbox => "INSERT INTO outbox_raw (outbox_id, seq, bytes) VALUES ($1, $2, $3)",
        }
    }

    fn select_sql(self) -> &'static str {
        match self {
            Blob::Inbound => "SELECT bytes FROM inbound_raw WHERE inbound_id = $1 AND seq = $2",
            Blob::Outbox => "SELECT bytes FROM outbox_raw WHERE outbox_id = $1 AND seq = $2",
        }
    }
}

/// Stores `bytes` for row `id` (nothing for an empty message), in the caller's transaction.
pub(crate) async fn put(conn: &mut AnyConnection, blob: Blob, id: i64, bytes: &[u8]) -> Result<()> {
    for (seq, chunk) in bytes.chunks(CHUNK).enumerate() {
        sqlx::query(blob.insert_sql())
            .bind(id)
            .bind(to_i64("chunk number", seq as u64)?)
            .bind(chunk)
            .execute(&mut *conn)
            .await
            .with_ctx(|| format!("storing the bytes of {blob:?} #{id}"))?;
    }
    Ok(())
}

/// The bytes of row `id` (empty when none are stored: never written, or purged), read a chunk
/// at a time into a buffer of `size_hint` bytes. Chunks of any size are read: migration 0007
/// moved each older message over as one chunk, megabytes long.
pub(crate) async fn get(
    conn: &mut AnyConnection,
    blob: Blob,
    id: i64,
    size_hint: usize,
) -> Result<Vec<u8>> {
    read_from(conn, blob, id, Vec::with_capacity(size_hint), 0).await
}

/// The bytes of row `id` when its first chunk was read already (by the statement that claimed
/// it): the rest, if that chunk is a full one, is appended to it.
pub(crate) async fn get_after(
    pool: &AnyPool,
    blob: Blob,
    id: i64,
    first: Vec<u8>,
) -> Result<Vec<u8>> {
    if first.len() < CHUNK {
        return Ok(first);
    }
    let mut conn = pool.acquire().await.ctx("acquiring a connection")?;
    read_from(&mut conn, blob, id, first, 1).await
}

/// Appends the chunks of row `id` from number `from` on to `out`.
async fn read_from(
    conn: &mut AnyConnection,
    blob: Blob,
    id: i64,
    mut out: Vec<u8>,
    from: i64,
) -> Result<Vec<u8>> {
    for seq in from.. {
        let chunk: Option<Vec<u8>> = sqlx::query_scalar(blob.select_sql())
            .bind(id)
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await
            .with_ctx(|| format!("reading the bytes of {blob:?} #{id}"))?;
        let Some(chunk) = chunk else { break };
        out.extend_from_slice(&chunk);
        // Only the last chunk [`put`] writes is short: no query for one that cannot exist.
        if chunk.len() < CHUNK {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::super::testutil::{PgDb, both, sample_inbound};
    use super::*;

    /// Bytes that differ at every offset, so a chunk out of order or lost cannot pass.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
            .collect()
    }

    #[tokio::test]
    async fn messages_round_trip_across_chunks() {
        both("blob_chunks", |store| async move {
            // Empty, short, exactly one chunk, and two and a half chunks.
            for (n, len) in [0, 10, CHUNK, CHUNK * 5 / 2].into_iter().enumerate() {
                let bytes = pattern(len);
                let mut new = sample_inbound(100 + n as u32);
                new.size = len as u64;
                new.raw = bytes.as_slice().into();
                let mut tx = store.begin().await.unwrap();
                let id = store.insert_inbound(&mut tx, &new).await.unwrap();
                tx.commit().await.unwrap();
                let row = store.get_inbound(id).await.unwrap().unwrap();
                assert_eq!(row.raw.len(), len, "inbound of {len} bytes");
                assert!(
                    row.raw == bytes,
                    "inbound of {len} bytes comes back byte for byte"
                );
                let chunks: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM inbound_raw WHERE inbound_id = $1")
                        .bind(id)
                        .fetch_one(store.pool())
                        .await
                        .unwrap();
                assert_eq!(
                    chunks as usize,
                    len.div_ceil(CHUNK),
                    "chunks of {len} bytes"
                );
            }
        })
        .await;
    }

    /// A database made before migration 7 keeps its mail: raw bytes move to the chunk tables,
    /// a large message as one chunk longer than those written since.
    async fn upgrade_keeps_raw_mail(store: Store) {
        store.migrate_up_to(6).await.unwrap();
        let inbound = pattern(CHUNK * 2 + 5);
        let outgoing = b"Message-ID: <teleavis.1.1@x>\r\n\r\nhello\r\n".to_vec();
        sqlx::query(
            "INSERT INTO inbound (received_at, mailbox, uidvalidity, uid, sha256, size, raw, \
             outcome) VALUES ('2026-11-27T13:46:33.123Z', 'INBOX', 1, 1, 'aa', $2, $1, 'processed')",
        )
        .bind(inbound.clone())
        .bind(inbound.len() as i64)
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO outbox (created_at, message_id, kind, envelope_from, recipients, raw, \
             status, next_attempt_at) VALUES ('2026-11-27T13:46:33.123Z', '<teleavis.1.1@x>', \
             'ack', 'a@b', 'c@d', $1, 'sent', '2026-11-27T13:46:33.123Z')",
        )
        .bind(outgoing.clone())
        .execute(store.pool())
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let row = store.get_inbound(1).await.unwrap().unwrap();
        assert!(row.raw == inbound, "inbound raw moved by the migration");
        let out = store.get_outbox(1).await.unwrap().unwrap();
        assert_eq!(out.raw, outgoing, "outbox raw moved by the migration");
    }

    #[tokio::test]
    async fn upgrade_from_schema_6_keeps_raw_mail() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = Store::connect(&url, 2).await.unwrap();
        upgrade_keeps_raw_mail(store.clone()).await;
        store.close().await;
        if let Some(db) = PgDb::create("blob_upgrade").await {
            let store = Store::connect(&db.url, 2).await.unwrap();
            upgrade_keeps_raw_mail(store.clone()).await;
            store.close().await;
            db.drop_db().await;
        }
    }
}
