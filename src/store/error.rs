//! The store's error type, `StoreError`: every failure names what the store was doing.

use std::error::Error as StdError;

use super::Backend;

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in `store`. The `Display` text says what the store was doing;
/// the underlying driver error is the `source()`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL `{url}`: expected `sqlite:…` or `postgres://…`")]
    UnsupportedUrl {
        /// The URL with any password masked.
        url: String,
    },
    /// The pool (or a dedicated connection) could not be opened.
    #[error("cannot connect to the {backend} database at `{url}`")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// The URL with any password masked.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("applying the {backend} database migrations failed")]
    Migrate {
        /// Which backend.
        backend: Backend,
        /// The migrator error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error while {context}")]
    Query {
        /// What the store was doing ("inserting inbound message", …).
        context: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// `insert_inbound` found a message with the same SHA-256 already stored.
    #[error("inbound message with SHA-256 {sha256} is already stored as #{existing_id}")]
    DuplicateInbound {
        /// The raw bytes' SHA-256 (hex).
        sha256: String,
        /// The id of the row already stored.
        existing_id: i64,
    },
    /// A row that must exist does not.
    #[error("{what} {key} not found")]
    NotFound {
        /// Kind of row ("inbound message", "thread", …).
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// An argument the store refuses (a comma in an address list, a call outside a transaction…).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was wrong.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A value read from the database could not be decoded (bad timestamp, wrong type…).
    #[error("unreadable value in column `{column}`: {detail}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// Why it could not be decoded.
        detail: String,
    },
    /// The closure given to `enqueue` failed to build the message.
    #[error("building outgoing message {message_id} failed")]
    Build {
        /// The Message-ID the message was to carry.
        message_id: String,
        /// The builder's error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl StoreError {
    /// True when the failure is a unique-constraint violation (a concurrent insert won the race).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::DuplicateInbound { .. } => true,
            StoreError::Query {
                source: sqlx::Error::Database(e),
                ..
            } => e.is_unique_violation(),
            _ => false,
        }
    }

    /// True when retrying the whole transaction later may succeed: connection loss, pool
    /// timeout, SQLite busy/locked, PostgreSQL serialization failure or deadlock.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            StoreError::Query { source, .. } | StoreError::Connect { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => {
                let code = e.code().unwrap_or_default();
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
                    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                } else {
                    // Serialization failure, deadlock, connection exceptions, admin shutdown.
                    matches!(&*code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                        || code.starts_with("08")
                }
            }
            _ => false,
        }
    }
}

/// Attaches a context to a driver error.
pub(crate) trait Ctx<T> {
    /// Maps the error to `StoreError::Query` with a fixed context.
    fn ctx(self, context: &'static str) -> Result<T>;
    /// Maps the error to `StoreError::Query` with a computed context.
    fn with_ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T> {
        self.map_err(|source| StoreError::Query {
            context: context.to_owned(),
            source,
        })
    }

    fn with_ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Query {
            context: context(),
            source,
        })
    }
}
