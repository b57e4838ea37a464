//! Database access through sqlx Any (SQLite or PostgreSQL): inbound, threads, outbox, audit.
//!
//! One binary serves both backends: every query is a runtime query (`$1` placeholders work on
//! both through the Any driver), values cross the boundary as `i64`, `String` and `Vec<u8>`
//! only, and timestamps are RFC 3339 UTC text with milliseconds (see [`ts`]) so that they sort
//! as text on both. Migrations are embedded, one folder per backend.
//!
//! Transactions: the intake makes ONE transaction per incoming message ([`Store::begin`]) and
//! passes it to every write function, which take `&mut AnyConnection` (a `&mut Tx` coerces to
//! it). On SQLite, `begin` issues `BEGIN IMMEDIATE`: the write lock is taken up front, so a
//! transaction never reads a snapshot that another writer makes stale, and concurrent writers
//! queue on the busy timeout instead of failing half-way. Read functions take `&self` and use
//! the pool.

mod audit;
mod billing;
mod blobs;
mod deadlines;
mod directory;
mod domain;
mod error;
mod inbound;
mod kinds;
mod lease;
mod ops;
mod outbox;
mod purge;
mod recipients;
mod redact;
mod roster;
mod signatures;
mod stats;
mod threads;

#[cfg(test)]
pub(crate) mod testutil;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Row, SqlSafeStr};
use tracing::{debug, info};

pub use audit::{AuditEntry, AuditReport, GENESIS_HASH, audit_hash};
pub use billing::ActRow;
pub use deadlines::{DeadlineStep, PendingDeadline, ThreadDeadline};
pub use directory::{DIRECTORY_BATCH, DirectoryEntry, DirectoryImport};
pub use domain::AttachmentMeta;
pub use error::{Result, StoreError};
pub use inbound::{InboundMeta, InboundOutcome, InboundRow, NewInbound, QuarantineRow};
pub use kinds::{Direction, InboundStatus, MessageKind, OutboxKind};
pub use lease::{ClaimHolder, Lease};
pub use ops::{AuditRow, InstanceBeat, InstanceRow, OpsSnapshot};
pub use outbox::{
    Claimed, Enqueued, NewOutgoing, OUTBOX_CHANNEL, OutboxListener, OutboxRow, OutboxStatus,
    outbox_message_id,
};
pub use purge::PurgeReport;
pub use roster::RosterSlot;
pub use signatures::AcceptedSignature;
pub use sqlx::AnyConnection;
pub use stats::ThreadStatsRow;
pub use threads::{NewThreadMessage, ThreadMessageRow, ThreadRow, ThreadUpdate};

use error::Ctx;

/// A transaction on the store; write functions take it as `&mut AnyConnection`.
pub type Tx = sqlx::Transaction<'static, Any>;

/// Busy timeout of SQLite connections: how long a writer waits for the write lock (30 s).
const SQLITE_BUSY_PRAGMA: &str = "PRAGMA busy_timeout = 30000";

/// Which database is behind the `Any` pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (single instance).
    Sqlite,
    /// PostgreSQL (several instances may share it).
    Postgres,
}

impl Backend {
    /// The backend a URL designates.
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// The database: a pool plus the backend it talks to. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The URL as given (may hold a password; never logged): the mailbox lease opens its own
    /// connection with it.
    url: Arc<str>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool on `url` (`sqlite:///path/file.db`, `sqlite::memory:`,
    /// `postgres://user@host/db`). A SQLite file is created if missing (its folder must exist)
    /// and switched to WAL mode; every SQLite connection gets a busy timeout, foreign keys on and
    /// `synchronous = FULL` (a committed message survives a power cut). `sqlite::memory:` is one
    /// database per connection, so it is given a single, never recycled connection (for tests
    /// and one-shot tools: a read through the pool waits while a transaction is open).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let shown = redact_url(url);
        let memory = backend == Backend::Sqlite && url.contains(":memory:");
        let connect_url = if backend == Backend::Sqlite && !memory && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            Cow::Owned(format!("{url}{sep}mode=rwc"))
        } else {
            Cow::Borrowed(url)
        };

        let mut options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30));
        if backend == Backend::Sqlite {
            // A SQLite connection is a file handle in this process: it cannot have died
            // behind our back, so no ping round trip to its worker thread on every acquire.
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::query(SQLITE_BUSY_PRAGMA).execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
            if memory {
                options = options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
        }
        let pool = options
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Connect {
                backend,
                url: shown.clone(),
                source,
            })?;
        if backend == Backend::Sqlite && !memory {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&pool)
                .await
                .ctx("switching SQLite to WAL mode")?;
            debug!(journal_mode = %mode, "SQLite journal mode");
        }
        info!(%backend, url = %shown, max_connections, "database connected");
        Ok(Store {
            pool,
            backend,
            url: Arc::from(url),
        })
    }

    /// Applies the embedded migrations of the backend; running it again is a no-op.
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_up_to(i64::MAX).await
    }

    /// Applies the migrations up to version `last` (tests of an upgrade start from an older
    /// schema).
    pub(crate) async fn migrate_up_to(&self, last: i64) -> Result<()> {
        // (version, name, SQLite text, PostgreSQL text), in order.
        const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
            (
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "accepted_signatures",
                include_str!("../../migrations/sqlite/0002_accepted_signatures.sql"),
                include_str!("../../migrations/postgres/0002_accepted_signatures.sql"),
            ),
            (
                4,
                "instances",
                include_str!("../../migrations/sqlite/0004_instances.sql"),
                include_str!("../../migrations/postgres/0004_instances.sql"),
            ),
            (
                5,
                "directory",
                include_str!("../../migrations/sqlite/0005_directory.sql"),
                include_str!("../../migrations/postgres/0005_directory.sql"),
            ),
            (
                6,
                "billing_acts",
                include_str!("../../migrations/sqlite/0006_billing_acts.sql"),
                include_str!("../../migrations/postgres/0006_billing_acts.sql"),
            ),
            (
                7,
                "raw_chunks",
                include_str!("../../migrations/sqlite/0007_raw_chunks.sql"),
                include_str!("../../migrations/postgres/0007_raw_chunks.sql"),
            ),
        ];
        let migrations = MIGRATIONS
            .iter()
            .filter(|m| m.0 <= last)
            .map(|&(version, name, sqlite, postgres)| {
                let sql = match self.backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator::with_migrations(migrations);
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: self.backend,
                source,
            })?;
        info!(backend = %self.backend, "database migrations applied");
        Ok(())
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL).
    pub async fn begin(&self) -> Result<Tx> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .ctx("starting a transaction")
    }

    /// Checks that the database answers (`check-config --connect`, watchdog).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .ctx("checking the database connection")?;
        Ok(())
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool, for the rare query that has no function here.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Formats a timestamp the way the store keeps it: RFC 3339, UTC, milliseconds, `Z`
/// (`2026-11-27T13:46:33.123Z`). Fixed width, so text order is time order.
pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a timestamp written by [`ts`] (any RFC 3339 form is accepted).
pub fn parse_ts(text: &str) -> std::result::Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// The canonical form of a Message-ID as the store keeps and compares it: trimmed, with exactly
/// one pair of angle brackets (`<id@host>`), whatever form the parser returned. `None` if empty.
pub fn normalize_message_id(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t).trim();
    if t.is_empty() {
        None
    } else {
        Some(format!("<{t}>"))
    }
}

/// Masks the password of a URL (`postgres://user:***@host/db`) for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

// ---- row decoding helpers -------------------------------------------------------------------

/// Reads a column, mapping decode failures to `StoreError::Corrupt`.
pub(crate) fn col<'r, T>(row: &'r AnyRow, column: &'static str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).map_err(|e| StoreError::Corrupt {
        column,
        detail: e.to_string(),
    })
}

/// Reads a column holding one of the words of [`kinds`].
pub(crate) fn col_parsed<T>(row: &AnyRow, column: &'static str) -> Result<T>
where
    T: std::str::FromStr<Err = StoreError>,
{
    let text: String = col(row, column)?;
    text.parse()
}

/// Reads a timestamp column written by [`ts`].
pub(crate) fn col_ts(row: &AnyRow, column: &'static str) -> Result<DateTime<Utc>> {
    let text: String = col(row, column)?;
    parse_ts(&text).map_err(|e| StoreError::Corrupt {
        column,
        detail: format!("`{text}` is not an RFC 3339 timestamp: {e}"),
    })
}

/// Reads a nullable timestamp column.
pub(crate) fn col_ts_opt(row: &AnyRow, column: &'static str) -> Result<Option<DateTime<Utc>>> {
    let text: Option<String> = col(row, column)?;
    text.map(|text| {
        parse_ts(&text).map_err(|e| StoreError::Corrupt {
            column,
            detail: format!("`{text}` is not an RFC 3339 timestamp: {e}"),
        })
    })
    .transpose()
}

/// Reads an integer column into a narrower unsigned type.
pub(crate) fn col_u<T: TryFrom<i64>>(row: &AnyRow, column: &'static str) -> Result<T> {
    let v: i64 = col(row, column)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt {
        column,
        detail: format!("{v} is out of range"),
    })
}

/// Splits a comma-separated address list column.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Joins addresses for a comma-separated column, refusing an address that holds a comma.
pub(crate) fn join_list(what: &'static str, items: &[String]) -> Result<String> {
    if let Some(bad) = items.iter().find(|a| a.contains(',')) {
        return Err(StoreError::Invalid {
            what,
            detail: format!("`{bad}` contains a comma"),
        });
    }
    Ok(items
        .iter()
        .map(|a| a.trim())
        .collect::<Vec<_>>()
        .join(", "))
}

/// Converts a count or size to the `i64` the database stores.
pub(crate) fn to_i64<T: TryInto<i64> + Copy + fmt::Display>(
    what: &'static str,
    v: T,
) -> Result<i64> {
    v.try_into().map_err(|_| StoreError::Invalid {
        what,
        detail: format!("{v} does not fit a 64-bit integer"),
    })
}

#[cfg(test)]
mod tests {
    use super::testutil::both;
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip() {
        let at = parse_ts("2026-11-27T13:46:33.123456Z").unwrap();
        assert_eq!(ts(at), "2026-11-27T13:46:33.123Z");
        let whole = parse_ts("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(ts(whole), "2026-01-02T03:04:05.000Z");
        assert_eq!(parse_ts(&ts(whole)).unwrap(), whole);
        assert_eq!(
            ts(parse_ts("2026-11-27T14:46:33.5+01:00").unwrap()),
            "2026-11-27T13:46:33.500Z"
        );
    }

    #[test]
    fn message_ids_are_normalised() {
        assert_eq!(normalize_message_id(" <a@b> ").as_deref(), Some("<a@b>"));
        assert_eq!(normalize_message_id("a@b").as_deref(), Some("<a@b>"));
        assert_eq!(normalize_message_id("<>"), None);
        assert_eq!(normalize_message_id(""), None);
    }

    #[test]
    fn urls_are_redacted_and_classified() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///var/x.db"), "sqlite:///var/x.db");
        assert_eq!(
            Backend::from_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(matches!(
            Backend::from_url("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { .. })
        ));
    }

    #[test]
    fn address_lists_refuse_commas() {
        assert_eq!(
            join_list("recipients", &["a@b".into(), " c@d".into()]).unwrap(),
            "a@b, c@d"
        );
        assert_eq!(split_list("a@b, c@d"), vec!["a@b", "c@d"]);
        assert!(join_list("recipients", &["\"x,y\"@b".into()]).is_err());
    }

    #[tokio::test]
    async fn migrate_twice_is_idempotent() {
        both("migrate_twice", |store| async move {
            store.migrate().await.unwrap();
            store.migrate().await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM threads")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(n, 0);
        })
        .await;
    }

    #[tokio::test]
    async fn sqlite_busy_is_transient() {
        let (store, _dir) = testutil::sqlite_store(2).await;
        let mut holder = store.begin().await.unwrap();
        store.next_thread_seq(&mut holder, 2026).await.unwrap();
        let mut other = store.pool().acquire().await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *other)
            .await
            .unwrap();
        let err = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *other)
            .await
            .ctx("starting a transaction")
            .unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(!err.is_unique_violation());
        holder.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn missing_sqlite_folder_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nope/teleavis.db", dir.path().display());
        let err = Store::connect(&url, 1).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Connect {
                    backend: Backend::Sqlite,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("nope/teleavis.db"), "{err}");
    }

    /// The reliability contract: everything one message causes commits together or not at all.
    /// A crash before the commit (the transaction dropped unfinished) leaves no trace, and the
    /// message handled again afterwards is handled exactly once.
    #[tokio::test]
    async fn a_crash_before_commit_leaves_nothing_and_the_retry_counts_once() {
        both("crash_before_commit", |store| async move {
            let new = testutil::sample_inbound(1);
            let now = parse_ts("2026-11-27T13:46:33.123Z").unwrap();
            for attempt in 0..2 {
                store.ping().await.unwrap();
                let mut tx = store.begin().await.unwrap();
                let inbound = store.insert_inbound(&mut tx, &new).await.unwrap();
                let seq = store.next_thread_seq(&mut tx, 2026).await.unwrap();
                assert_eq!(seq, 1, "a rolled-back number is given back");
                let id = format!("TE-2026-{seq:06}");
                let thread = ThreadRow {
                    id: id.clone(),
                    status: "nouvelle".into(),
                    category: "infectio".into(),
                    requester: "dr.a@b.mssante.fr".into(),
                    requester_name: None,
                    requester_rpps: None,
                    taken_by: None,
                    form_json: "{}".into(),
                    previous_thread: None,
                    created_at: now,
                    updated_at: now,
                    closed_at: None,
                };
                store.insert_thread(&mut tx, &thread).await.unwrap();
                let out = NewOutgoing {
                    thread_id: Some(id.clone()),
                    kind: "ack".parse().unwrap(),
                    envelope_from: "g@x.fr".into(),
                    recipients: vec!["dr.a@b.mssante.fr".into()],
                };
                store
                    .enqueue(&mut tx, &out, "x.fr", now, |mid| {
                        Ok::<_, std::io::Error>(mid.into())
                    })
                    .await
                    .unwrap();
                let done = InboundOutcome {
                    outcome: InboundStatus::Processed,
                    thread_id: Some(&id),
                    destination: Some("Traités"),
                    ..InboundOutcome::new(crate::store::InboundStatus::Stored)
                };
                store
                    .set_inbound_outcome(&mut tx, inbound, &done)
                    .await
                    .unwrap();
                store
                    .append_audit(
                        &mut tx,
                        "intake",
                        "thread_opened",
                        &id,
                        &serde_json::json!({}),
                        now,
                    )
                    .await
                    .unwrap();
                if attempt == 0 {
                    drop(tx); // the process dies here
                    assert!(
                        store
                            .find_inbound_by_sha256(&new.sha256)
                            .await
                            .unwrap()
                            .is_none()
                    );
                    assert!(store.list_threads(None, None).await.unwrap().is_empty());
                    assert!(
                        store
                            .outbox_by_status(OutboxStatus::Pending)
                            .await
                            .unwrap()
                            .is_empty()
                    );
                    assert_eq!(store.verify_audit().await.unwrap().rows, 0);
                } else {
                    tx.commit().await.unwrap();
                }
            }
            assert_eq!(store.list_threads(None, None).await.unwrap().len(), 1);
            assert_eq!(
                store
                    .outbox_by_status(OutboxStatus::Pending)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(store.unmoved().await.unwrap().len(), 1);
            let audit = store.verify_audit().await.unwrap();
            assert_eq!((audit.rows, audit.first_bad), (1, None));
            // The same message fetched again is recognised.
            let mut tx = store.begin().await.unwrap();
            assert!(
                store
                    .insert_inbound(&mut tx, &new)
                    .await
                    .unwrap_err()
                    .is_unique_violation()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn memory_database_works() {
        let store = Store::connect("sqlite::memory:", 5).await.unwrap();
        store.migrate().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let seq = store.next_thread_seq(&mut tx, 2026).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(seq, 1);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM thread_counters")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn sqlite_file_is_created_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url, 2).await.unwrap();
        assert!(path.exists());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }
}
