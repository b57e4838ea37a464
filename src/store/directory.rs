//! The national directory's tables: batched replacement inside one transaction, lookups by
//! address and by RPPS, and the record of the last import.
//!
//! Replacement is `DELETE` then batched multi-row `INSERT`s in the caller's transaction: readers
//! (the daemon) keep seeing the old directory until the commit, on SQLite (WAL) and PostgreSQL
//! (MVCC) alike, and a failed import rolls back to it. A batch never holds an address twice
//! (the caller merges those); an address seen again in a later batch is merged by
//! `ON CONFLICT`, keeping the first value of each column and filling the empty ones.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe};

use super::error::Ctx;
use super::{Result, Store, col, col_ts, ts};

/// One mailbox of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DirectoryEntry {
    /// Lowercase address: the key.
    pub address: String,
    /// `PER` (a person) or `ORG` (an organisation).
    pub kind: String,
    /// The 11-digit RPPS number (`Identifiant PP`).
    pub rpps: Option<String>,
    pub civility: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub profession_code: Option<String>,
    /// `Libellé Profession`: Médecin, Sage-Femme, Infirmier, Pharmacien…
    pub profession: Option<String>,
    pub specialty_code: Option<String>,
    /// `Libellé savoir-faire`: `Médecine générale (SM)`…
    pub specialty: Option<String>,
    pub organization: Option<String>,
    pub postal_code: Option<String>,
    /// `57`, `2A`, `974`…
    pub department: Option<String>,
}

/// The record of an import: the source file as it was when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryImport {
    pub source: String,
    pub file_size: i64,
    pub file_mtime: String,
    pub lines: i64,
    pub entries: i64,
    pub imported_at: DateTime<Utc>,
}

const COLUMNS: [&str; 13] = [
    "address",
    "kind",
    "rpps",
    "civility",
    "last_name",
    "first_name",
    "profession_code",
    "profession",
    "specialty_code",
    "specialty",
    "organization",
    "postal_code",
    "department",
];

/// Rows per `INSERT`: 13 × 500 binds stays far below both backends' limits.
pub const DIRECTORY_BATCH: usize = 500;

fn entry_from(row: &AnyRow) -> Result<DirectoryEntry> {
    Ok(DirectoryEntry {
        address: col(row, "address")?,
        kind: col(row, "kind")?,
        rpps: col(row, "rpps")?,
        civility: col(row, "civility")?,
        last_name: col(row, "last_name")?,
        first_name: col(row, "first_name")?,
        profession_code: col(row, "profession_code")?,
        profession: col(row, "profession")?,
        specialty_code: col(row, "specialty_code")?,
        specialty: col(row, "specialty")?,
        organization: col(row, "organization")?,
        postal_code: col(row, "postal_code")?,
        department: col(row, "department")?,
    })
}

impl Store {
    /// Empties the directory inside `tx` (the first step of a replacement).
    pub async fn directory_clear(&self, tx: &mut AnyConnection) -> Result<()> {
        if self.backend == super::Backend::Sqlite {
            // The default 2 MB page cache makes SQLite re-read index pages all the time while
            // 500,000 keys go in (ten times slower); 32 MB holds the indexes' working set.
            sqlx::query("PRAGMA cache_size = -32768")
                .execute(&mut *tx)
                .await
                .ctx("sizing the SQLite cache for the import")?;
        }
        sqlx::query("DELETE FROM directory_entries")
            .execute(&mut *tx)
            .await
            .ctx("emptying the directory")?;
        Ok(())
    }

    /// Inserts one batch (at most [`DIRECTORY_BATCH`] entries, no address twice).
    pub async fn directory_insert_batch(
        &self,
        tx: &mut AnyConnection,
        batch: &[DirectoryEntry],
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut sql = String::with_capacity(64 + batch.len() * 80);
        sql.push_str("INSERT INTO directory_entries (");
        sql.push_str(&COLUMNS.join(", "));
        sql.push_str(") VALUES ");
        // SQLite gets anonymous `?` placeholders: with numbered ones, the driver looks each
        // parameter's name up in a list SQLite scans linearly, quadratic in the batch (90 % of
        // the import's time at 6,500 parameters a statement).
        let sqlite = self.backend == super::Backend::Sqlite;
        let mut n = 0;
        for i in 0..batch.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for j in 0..COLUMNS.len() {
                if j > 0 {
                    sql.push(',');
                }
                n += 1;
                if sqlite {
                    sql.push('?');
                } else {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (address) DO UPDATE SET ");
        let merge: Vec<String> = COLUMNS[2..]
            .iter()
            .map(|c| format!("{c} = COALESCE(directory_entries.{c}, excluded.{c})"))
            .collect();
        sql.push_str(&merge.join(", "));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for e in batch {
            q = q
                .bind(e.address.clone())
                .bind(e.kind.clone())
                .bind(e.rpps.clone())
                .bind(e.civility.clone())
                .bind(e.last_name.clone())
                .bind(e.first_name.clone())
                .bind(e.profession_code.clone())
                .bind(e.profession.clone())
                .bind(e.specialty_code.clone())
                .bind(e.specialty.clone())
                .bind(e.organization.clone())
                .bind(e.postal_code.clone())
                .bind(e.department.clone());
        }
        q.execute(&mut *tx)
            .await
            .ctx("inserting directory entries")?;
        Ok(())
    }

    /// Records the import and returns the number of entries now in the directory (in `tx`).
    pub async fn directory_record_import(
        &self,
        tx: &mut AnyConnection,
        import: &DirectoryImport,
    ) -> Result<i64> {
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM directory_entries")
            .fetch_one(&mut *tx)
            .await
            .ctx("counting directory entries")?;
        sqlx::query(
            "INSERT INTO directory_imports (source, file_size, file_mtime, lines, entries, \
             imported_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(import.source.clone())
        .bind(import.file_size)
        .bind(import.file_mtime.clone())
        .bind(import.lines)
        .bind(entries)
        .bind(ts(import.imported_at))
        .execute(&mut *tx)
        .await
        .ctx("recording the directory import")?;
        Ok(entries)
    }

    /// The last import, if any.
    pub async fn directory_last_import(&self) -> Result<Option<DirectoryImport>> {
        let row = sqlx::query(
            "SELECT source, file_size, file_mtime, lines, entries, imported_at \
             FROM directory_imports ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .ctx("reading the last directory import")?;
        row.map(|r| {
            Ok(DirectoryImport {
                source: col(&r, "source")?,
                file_size: col(&r, "file_size")?,
                file_mtime: col(&r, "file_mtime")?,
                lines: col(&r, "lines")?,
                entries: col(&r, "entries")?,
                imported_at: col_ts(&r, "imported_at")?,
            })
        })
        .transpose()
    }

    /// The entry of an address (any case), read inside a transaction.
    pub async fn directory_by_address_in(
        &self,
        conn: &mut AnyConnection,
        address: &str,
    ) -> Result<Option<DirectoryEntry>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM directory_entries WHERE address = $1",
            COLUMNS.join(", ")
        )))
        .bind(address.trim().to_lowercase())
        .fetch_optional(&mut *conn)
        .await
        .ctx("reading a directory entry")?;
        row.as_ref().map(entry_from).transpose()
    }

    /// The entry of an address (any case).
    pub async fn directory_by_address(&self, address: &str) -> Result<Option<DirectoryEntry>> {
        let mut conn = self.pool.acquire().await.ctx("acquiring a connection")?;
        self.directory_by_address_in(&mut conn, address).await
    }

    /// The entries of an RPPS number (a person may have several mailboxes).
    pub async fn directory_by_rpps(&self, rpps: &str) -> Result<Vec<DirectoryEntry>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM directory_entries WHERE rpps = $1 ORDER BY address",
            COLUMNS.join(", ")
        )))
        .bind(rpps.to_owned())
        .fetch_all(&self.pool)
        .await
        .ctx("reading directory entries by RPPS")?;
        rows.iter().map(entry_from).collect()
    }

    /// Every entry whose address is in `addresses` (lowercase), for statistics.
    pub async fn directory_entries_for(&self, addresses: &[String]) -> Result<Vec<DirectoryEntry>> {
        let mut out = Vec::new();
        for chunk in addresses.chunks(DIRECTORY_BATCH) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {} FROM directory_entries WHERE address IN ({})",
                COLUMNS.join(", "),
                marks.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(a.clone());
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .ctx("reading directory entries")?;
            for r in &rows {
                out.push(entry_from(r)?);
            }
        }
        Ok(out)
    }
}
