//! The mailbox lease: which `teleavis run` process may read a given IMAP mailbox.
//!
//! PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) keyed by a hash of the mailbox
//! name, taken on a dedicated connection outside the pool. The lock lives exactly as long as
//! that session: if the process dies, the kernel closes the socket, PostgreSQL ends the session
//! and another instance's next `acquire_mailbox_lease` succeeds (poll it every few seconds). A
//! host that vanishes without closing the socket keeps the lock until the server notices the
//! dead TCP peer: set `tcp_keepalives_idle`/`_interval`/`_count` on the server to bound that.
//! The holder must check [`Lease::is_held`] before each batch and stop reading the mailbox when
//! it returns false. The lease needs a real session: point `database.url` at PostgreSQL itself
//! or at a pooler in session mode, never at a transaction-mode pooler.
//!
//! SQLite: single instance by design; the lease is always granted and always held.
//!
//! **Claim holders.** The same mechanism ties outbox claims to their holder's liveness on
//! PostgreSQL: a [`ClaimHolder`] keeps, on its own session, one advisory lock
//! `(CLAIM_LOCK_SPACE, hashtext(worker name))` per outbox worker of the process, and the claim
//! query treats a row claimed by a name whose lock nobody holds as free (see
//! `store/outbox.rs`). A killed process's claims are thus free the moment PostgreSQL ends its
//! session, instead of after the claim lease. A hash collision between two live names only
//! makes a dead claim look alive until its lease expires: the safe direction.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection};
use tracing::{info, warn};

use super::error::Ctx;
use super::{Backend, Result, Store, StoreError, redact_url};

/// How long opening the dedicated lease connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a liveness check of the lease connection may take before the lease is deemed lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The right to read one mailbox. Dropping it releases the lock (the session ends).
#[derive(Debug)]
pub struct Lease {
    name: String,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// SQLite: nothing to hold.
    Local,
    /// PostgreSQL: the session holding the advisory lock; `None` once lost.
    Postgres {
        conn: Option<AnyConnection>,
        key: i64,
    },
}

/// The first key of the advisory locks that say an outbox worker is alive ("tele" in ASCII);
/// the second is `hashtext(worker name)`. Mailbox leases use the one-key form, so they never
/// meet these.
pub(crate) const CLAIM_LOCK_SPACE: i32 = 0x7465_6c65;

/// The advisory lock key of a mailbox: the first 8 bytes of SHA-256("teleavis-mailbox:" + name).
fn lease_key(name: &str) -> i64 {
    let digest = Sha256::digest(format!("teleavis-mailbox:{name}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The error reported when the lease connection does not answer in time.
fn timed_out(what: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timed out"),
    ))
}

impl Lease {
    /// The mailbox name the lease was taken for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lease is still held: on PostgreSQL, the lock session answers within a few
    /// seconds and still holds the lock. Once false, it stays false (acquire a new lease).
    pub async fn is_held(&mut self) -> bool {
        let Inner::Postgres { conn, key } = &mut self.inner else {
            return true;
        };
        let Some(c) = conn.as_mut() else {
            return false;
        };
        let (classid, objid) = ((*key >> 32) & 0xffff_ffff, *key & 0xffff_ffff);
        let check = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND classid::bigint = $1 AND objid::bigint = $2 \
             AND objsubid = 1",
        )
        .bind(classid)
        .bind(objid)
        .fetch_one(c);
        let held = matches!(tokio::time::timeout(CHECK_TIMEOUT, check).await, Ok(Ok(1)));
        if !held {
            warn!(mailbox = %self.name, "mailbox lease lost");
            *conn = None;
        }
        held
    }

    /// Releases the lease now (rather than on drop).
    pub async fn release(mut self) -> Result<()> {
        if let Inner::Postgres { conn, key } = &mut self.inner
            && let Some(mut c) = conn.take()
        {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(*key)
                .execute(&mut c)
                .await
                .ctx("releasing the mailbox lease")?;
            let _ = c.close().await;
            info!(mailbox = %self.name, "mailbox lease released");
        }
        Ok(())
    }
}

impl Store {
    /// Tries to become the instance that reads mailbox `name`: `Some` if granted, `None` if
    /// another live process holds it. Never waits. See the module documentation.
    pub async fn acquire_mailbox_lease(&self, name: &str) -> Result<Option<Lease>> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(Lease {
                name: name.to_owned(),
                inner: Inner::Local,
            }));
        }
        let key = lease_key(name);
        let mut conn = self.dedicated_session().await?;
        let attempt =
            sqlx::query_scalar("SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END")
                .bind(key)
                .fetch_one(&mut conn);
        let got: i64 = match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
            Ok(got) => got,
            Err(_) => Err(timed_out("trying the advisory lock")),
        }
        .ctx("trying the mailbox lease")?;
        if got == 1 {
            info!(mailbox = %name, "mailbox lease acquired");
            Ok(Some(Lease {
                name: name.to_owned(),
                inner: Inner::Postgres {
                    conn: Some(conn),
                    key,
                },
            }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

/// Proof, held on its own PostgreSQL session, that the named outbox workers are alive; their
/// claims die with it (see the module documentation). Dropping it frees them.
#[derive(Debug)]
pub struct ClaimHolder {
    conn: Option<AnyConnection>,
    names: usize,
}

impl ClaimHolder {
    /// Whether the session still answers and holds every lock. Once false it stays false:
    /// the caller must stop claiming and take a new holder.
    pub async fn is_alive(&mut self) -> bool {
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        let check = claim_locks_held(c);
        let alive = matches!(
            tokio::time::timeout(CHECK_TIMEOUT, check).await,
            Ok(Ok(n)) if n == self.names as i64
        );
        if !alive {
            warn!("outbox claim holder lost its database session");
            self.conn = None;
        }
        alive
    }
}

/// How many claim liveness locks the session `c` holds.
async fn claim_locks_held(c: &mut AnyConnection) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid = pg_backend_pid() AND classid::bigint = $1 AND objsubid = 2",
    )
    .bind(i64::from(CLAIM_LOCK_SPACE))
    .fetch_one(c)
    .await
}

impl Store {
    /// A PostgreSQL session outside the pool (its locks live as long as it does).
    async fn dedicated_session(&self) -> Result<AnyConnection> {
        let connect = AnyConnection::connect(&self.url);
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(conn) => conn,
            Err(_) => Err(timed_out("connecting")),
        }
        .map_err(|source| StoreError::Connect {
            backend: self.backend,
            url: redact_url(&self.url),
            source,
        })
    }

    /// Takes the liveness locks of `names` (the outbox workers of this process) on a session
    /// of their own. `None` on SQLite, where claims are freed at start instead
    /// ([`Store::release_all_claims`]).
    pub async fn hold_claims(&self, names: &[String]) -> Result<Option<ClaimHolder>> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        let mut conn = self.dedicated_session().await?;
        for name in names {
            let attempt = sqlx::query_scalar::<_, i64>(
                "SELECT CASE WHEN pg_try_advisory_lock($1, hashtext($2)) THEN 1 ELSE 0 END",
            )
            .bind(CLAIM_LOCK_SPACE)
            .bind(name)
            .fetch_one(&mut conn);
            let got = match tokio::time::timeout(CHECK_TIMEOUT, attempt).await {
                Ok(got) => got,
                Err(_) => Err(timed_out("taking a claim lock")),
            }
            .ctx("taking the outbox claim locks")?;
            if got != 1 {
                // Another session holds it: a twin name or a hash collision. Its claims then
                // last their lease, as before; say so rather than fail.
                warn!(worker = %name, "outbox claim lock already held elsewhere");
            }
        }
        let mut holder = ClaimHolder {
            conn: Some(conn),
            names: 0,
        };
        // Count what this session really holds (a lock refused above is not ours).
        if let Some(c) = holder.conn.as_mut() {
            holder.names = claim_locks_held(c)
                .await
                .ctx("counting the outbox claim locks")? as usize;
        }
        Ok(Some(holder))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{pg_only, sqlite_store};
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(lease_key("INBOX"), lease_key("INBOX"));
        assert_ne!(lease_key("INBOX"), lease_key("INBOX2"));
    }

    #[tokio::test]
    async fn sqlite_lease_is_always_granted() {
        let (store, _dir) = sqlite_store(1).await;
        let mut a = store.acquire_mailbox_lease("INBOX").await.unwrap().unwrap();
        let mut b = store.acquire_mailbox_lease("INBOX").await.unwrap().unwrap();
        assert!(a.is_held().await && b.is_held().await);
        assert_eq!(a.name(), "INBOX");
        a.release().await.unwrap();
    }

    #[tokio::test]
    async fn pg_second_acquire_fails_until_first_connection_drops() {
        pg_only("lease", |store, url| async move {
            let mut first = store.acquire_mailbox_lease("INBOX").await.unwrap().unwrap();
            assert!(first.is_held().await);
            // Another process (another store on the same database) cannot take it.
            let other = Store::connect(&url, 2).await.unwrap();
            assert!(
                other
                    .acquire_mailbox_lease("INBOX")
                    .await
                    .unwrap()
                    .is_none()
            );
            // A different mailbox is independent.
            let inbox2 = other
                .acquire_mailbox_lease("INBOX2")
                .await
                .unwrap()
                .unwrap();

            // The first holder's session goes away (process death): the lock is freed.
            drop(first);
            let mut second = None;
            for _ in 0..50 {
                second = other.acquire_mailbox_lease("INBOX").await.unwrap();
                if second.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut second = second.expect("lease taken over after the holder's session ended");
            assert!(second.is_held().await);
            assert!(
                store
                    .acquire_mailbox_lease("INBOX")
                    .await
                    .unwrap()
                    .is_none()
            );

            // Explicit release works too.
            second.release().await.unwrap();
            let mut third = store.acquire_mailbox_lease("INBOX").await.unwrap().unwrap();
            assert!(third.is_held().await);

            // A lease whose session is killed is reported lost.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid <> pg_backend_pid() AND database = \
                 (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .execute(other.pool())
            .await
            .unwrap();
            assert!(!third.is_held().await);
            assert!(!third.is_held().await);
            drop(inbox2);
            other.close().await;
        })
        .await;
    }
}
