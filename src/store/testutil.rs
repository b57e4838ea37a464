//! Test fixtures: run one storage test on a fresh SQLite file and on a fresh PostgreSQL database.
//!
//! PostgreSQL: `TELEAVIS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`) is the
//! admin connection; each run creates `teleavis_t_<random>` and drops it afterwards, also when
//! the test panics. If the server is unreachable, the PostgreSQL half is skipped with a loud
//! NOTICE on stderr, unless `TELEAVIS_REQUIRE_POSTGRES=1`, which turns that into a failure.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use chrono::{DateTime, Utc};

use super::{NewInbound, Store, ThreadRow, parse_ts};

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL of the test PostgreSQL server.
pub(crate) fn pg_admin_url() -> String {
    std::env::var("TELEAVIS_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_owned())
}

/// A fresh, migrated SQLite store in a temporary folder (kept alive by the returned guard).
pub(crate) async fn sqlite_store(max_connections: u32) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("teleavis.db").display());
    let store = Store::connect(&url, max_connections)
        .await
        .expect("connect SQLite");
    store.migrate().await.expect("migrate SQLite");
    (store, dir)
}

/// A fresh PostgreSQL database, dropped by [`PgDb::drop_db`].
pub(crate) struct PgDb {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl PgDb {
    /// Creates the database, or returns `None` (after the NOTICE) if PostgreSQL is unreachable.
    pub(crate) async fn create(test: &str) -> Option<PgDb> {
        sqlx::any::install_default_drivers();
        let admin_url = pg_admin_url();
        let admin =
            tokio::time::timeout(Duration::from_secs(5), AnyConnection::connect(&admin_url)).await;
        let mut admin = match admin {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return unreachable(test, &admin_url, &e.to_string()),
            Err(_) => return unreachable(test, &admin_url, "timed out"),
        };
        let name = format!("teleavis_t_{:016x}", rand::random::<u64>());
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(PgDb {
            admin_url,
            name,
            url,
        })
    }

    /// A migrated store on this database.
    pub(crate) async fn store(&self, max_connections: u32) -> Store {
        let store = Store::connect(&self.url, max_connections)
            .await
            .expect("connect PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        store
    }

    /// Drops the database (forcibly: leftover sessions are terminated).
    pub(crate) async fn drop_db(self) {
        match AnyConnection::connect(&self.admin_url).await {
            Ok(mut admin) => {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await {
                    eprintln!("warning: could not drop test database {}: {e}", self.name);
                }
                let _ = admin.close().await;
            }
            Err(e) => eprintln!("warning: could not drop test database {}: {e}", self.name),
        }
    }
}

fn unreachable(test: &str, url: &str, why: &str) -> Option<PgDb> {
    if std::env::var("TELEAVIS_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("PostgreSQL unreachable at {url} ({why}) and TELEAVIS_REQUIRE_POSTGRES=1");
    }
    // Written to the real stderr (not `eprintln!`, which the test harness captures), once per
    // process so that it stands out.
    static SHOWN: AtomicBool = AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** NOTICE: PostgreSQL unreachable at {url} ({why}), PostgreSQL tests SKIPPED \
             (first: {test}); set TELEAVIS_REQUIRE_POSTGRES=1 to make this a failure ***\n"
        );
    }
    None
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL store (see module doc).
pub(crate) async fn both<F, Fut>(name: &str, test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    {
        let (store, _dir) = sqlite_store(4).await;
        eprintln!("[{name}] SQLite");
        test(store.clone()).await;
        store.close().await;
    }
    if let Some(db) = PgDb::create(name).await {
        eprintln!("[{name}] PostgreSQL ({})", db.name);
        let store = db.store(4).await;
        let outcome = tokio::spawn(test(store.clone())).await;
        store.close().await;
        db.drop_db().await;
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("PostgreSQL half of {name} was cancelled: {e}"),
            }
        }
    }
}

/// Runs `test` on a fresh PostgreSQL database only (skipped as above when unreachable); the
/// closure receives the database URL too.
pub(crate) async fn pg_only<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(db) = PgDb::create(name).await {
        let store = db.store(4).await;
        let outcome = tokio::spawn(test(store.clone(), db.url.clone())).await;
        store.close().await;
        db.drop_db().await;
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("{name} was cancelled: {e}"),
            }
        }
    }
}

/// A distinct inbound message number `n` (`<m{n}@b>`, SHA-256 field derived from `n`).
pub(crate) fn sample_inbound(n: u32) -> NewInbound<'static> {
    let raw = format!("From: a@b\r\nMessage-ID: <m{n}@b>\r\n\r\nbody {n}\r\n").into_bytes();
    NewInbound {
        received_at: parse_ts("2026-11-27T13:46:33.123Z").expect("timestamp"),
        mailbox: "INBOX".into(),
        uidvalidity: 4_000_000_000,
        uid: n,
        message_id: Some(format!("m{n}@b")),
        sha256: format!("{n:064x}"),
        size: raw.len() as u64,
        from_addr: Some("dr.a@b.mssante.fr".into()),
        raw: raw.into(),
    }
}

/// A thread row of category `infectio` opened (and last changed) at `at`.
pub(crate) fn sample_thread(id: &str, status: &str, at: DateTime<Utc>) -> ThreadRow {
    ThreadRow {
        id: id.into(),
        status: status.into(),
        category: "infectio".into(),
        requester: "dr.a@b.mssante.fr".into(),
        requester_name: Some("Dr A".into()),
        requester_rpps: Some("10001234567".into()),
        taken_by: None,
        form_json: r#"{"question":"?"}"#.into(),
        previous_thread: None,
        created_at: at,
        updated_at: at,
        closed_at: None,
    }
}
