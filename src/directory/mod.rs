//! The national MSSanté directory: who a correspondent is (RPPS, profession, specialty, where
//! they practise). Owns the import (a parser thread streaming batches to one database
//! transaction, so the old directory serves until the new one is committed), the lookups the
//! desk needs, and how an entry is described to people.

pub mod hooks;
pub mod parse;
pub mod watch;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::form::fold_label;
pub use crate::store::DirectoryEntry;
use crate::store::{DirectoryImport, Store};
pub use parse::ParseError;

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is bad: nothing changed.
    #[error("{0}; the directory is unchanged")]
    File(#[from] ParseError),
    /// The database refused: nothing changed.
    #[error("the directory is unchanged: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the directory is unchanged: the parser thread failed")]
    Thread,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Data lines read.
    pub lines: u64,
    /// Entries now in the directory (one per address).
    pub entries: i64,
    /// Wall time of the whole import.
    pub elapsed: Duration,
}

impl ImportSummary {
    /// Lines that were another line of an address already seen.
    pub fn merged(&self) -> u64 {
        self.lines
            .saturating_sub(u64::try_from(self.entries).unwrap_or(0))
    }
}

/// Imports `path` into the store, replacing the directory atomically. The file is parsed on a
/// thread of its own that hands batches to this task through a small bounded channel: memory
/// stays at a few batches whatever the file's size, and parsing overlaps the inserts.
pub async fn import(
    store: &Store,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let meta = std::fs::metadata(path).map_err(|e| ParseError {
        file: path.display().to_string(),
        line: None,
        problem: format!("cannot open: {e}"),
    })?;
    let (tx_batches, mut rx_batches) = tokio::sync::mpsc::channel::<Vec<DirectoryEntry>>(4);
    let owned = path.to_path_buf();
    let parser = std::thread::spawn(move || {
        parse::read_batches(&owned, crate::store::DIRECTORY_BATCH, &mut |b| {
            tx_batches.blocking_send(b).is_ok()
        })
    });
    let mut tx = store.begin().await?;
    store.directory_clear(&mut tx).await?;
    while let Some(batch) = rx_batches.recv().await {
        if let Err(e) = store.directory_insert_batch(&mut tx, &batch).await {
            // Dropping the receiver stops the parser; the transaction rolls back on drop.
            drop(rx_batches);
            let _ = parser.join();
            return Err(e.into());
        }
    }
    let counts = match parser.join() {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(ImportError::Thread),
    };
    let mtime = meta
        .modified()
        .ok()
        .map(|t| crate::store::ts(DateTime::<Utc>::from(t)))
        .unwrap_or_default();
    let entries = store
        .directory_record_import(
            &mut tx,
            &DirectoryImport {
                source: path.display().to_string(),
                file_size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
                file_mtime: mtime,
                lines: i64::try_from(counts.lines).unwrap_or(i64::MAX),
                entries: 0,
                imported_at: now,
            },
        )
        .await?;
    tx.commit()
        .await
        .map_err(|source| crate::store::StoreError::Query {
            context: "committing the directory".into(),
            source,
        })?;
    Ok(ImportSummary {
        lines: counts.lines,
        entries,
        elapsed: started.elapsed(),
    })
}

/// Whether `path` differs (size or modification time) from the last import of it.
pub async fn changed_since_import(store: &Store, path: &Path) -> anyhow::Result<bool> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .map(|t| crate::store::ts(DateTime::<Utc>::from(t)))
        .unwrap_or_default();
    Ok(match store.directory_last_import().await? {
        Some(last) => {
            last.source != path.display().to_string()
                || last.file_mtime != mtime
                || u64::try_from(last.file_size).ok() != Some(meta.len())
        }
        None => true,
    })
}

/// `Médecine générale (SM)` → `Médecine générale`: the qualification suffix is for registrars.
pub fn specialty_label(raw: &str) -> &str {
    let t = raw.trim();
    match t.rfind(" (") {
        Some(i) if t.ends_with(')') && t.len() - i <= 8 => t[..i].trim_end(),
        _ => t,
    }
}

/// How people are told who an entry is, as the seed writes it: `Spécialiste en Médecine
/// générale` for a physician with a specialty, else the profession (`Sage-Femme`).
pub fn describe(e: &DirectoryEntry) -> Option<String> {
    match (e.specialty.as_deref(), e.profession.as_deref()) {
        (Some(s), _) if !specialty_label(s).is_empty() => {
            Some(format!("Spécialiste en {}", specialty_label(s)))
        }
        (_, Some(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        _ => None,
    }
}

/// The person's name as the directory gives it: `Dr Olivier MARTIN`.
pub fn display_name(e: &DirectoryEntry) -> Option<String> {
    let civility = match e.civility.as_deref().map(str::trim) {
        Some("DR") => Some("Dr"),
        Some("PR") => Some("Pr"),
        Some("MME") => Some("Mme"),
        Some("M") => Some("M."),
        _ => None,
    };
    let parts: Vec<&str> = [civility, e.first_name.as_deref(), e.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
    (e.last_name.is_some() && !parts.is_empty()).then(|| parts.join(" "))
}

/// Whether a profession label is in a configured list (`Médecin` matches `médecins`,
/// `Sage-Femme` matches `sages-femmes`): compared without case, accents or plural `s`.
pub fn profession_in(profession: &str, list: &[String]) -> bool {
    let key = profession_key(profession);
    list.iter().any(|p| profession_key(p) == key)
}

fn profession_key(p: &str) -> String {
    fold_label(p)
        .split(['-', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| w.strip_suffix('s').unwrap_or(w))
        .collect::<Vec<_>>()
        .join("-")
}

/// An RPPS as typed: 11 digits, or the national identifier `8` + 11 digits.
pub fn rpps_query(text: &str) -> Option<String> {
    let t = text.trim();
    if !t.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match t.len() {
        11 => Some(t.to_owned()),
        12 if t.starts_with('8') => Some(t[1..].to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
