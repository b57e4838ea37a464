//! `teleavis backup FILE`: a consistent copy of the SQLite database while the daemon runs.
//!
//! The copy is written next to FILE under a temporary name (mode 0600: it holds patient data),
//! checked (`PRAGMA integrity_check`, the audit chain), then renamed over FILE, so a nightly job
//! never leaves a half-written file under the name it restores from. PostgreSQL is backed up
//! with `pg_dump` (README).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{UsageError, open_store};
use crate::config::Settings;
use crate::store::{Backend, Store};

/// Removes the temporary copy unless the backup succeeded.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub async fn backup(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    if Backend::from_url(&settings.database.url)? != Backend::Sqlite {
        return Err(UsageError(
            "backup copies a SQLite database; back up PostgreSQL with pg_dump (see README, \
             \"Backup and restore\")"
                .into(),
        )
        .into());
    }
    let store = open_store(settings).await?;
    let name = file
        .file_name()
        .ok_or_else(|| UsageError(format!("{}: not a file name", file.display())))?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // VACUUM INTO accepts an empty file: make it first, private.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let mut partial = Partial(Some(tmp.clone()));
    store.backup_sqlite(&tmp).await?;
    store.close().await;

    let (rows, last_hash) = check_copy(&tmp).await?;
    std::fs::rename(&tmp, file)
        .with_context(|| format!("renaming {} to {}", tmp.display(), file.display()))?;
    partial.0 = None;
    println!(
        "{}: consistent copy, {} audit rows, last hash {}",
        file.display(),
        rows,
        last_hash.as_deref().unwrap_or("-")
    );
    Ok(())
}

/// Opens the copy and checks it: integrity and the audit chain. (Opened read-write: the store
/// switches a file to WAL mode, which a read-only connection cannot; closing it folds the WAL
/// back, so the copy is one self-contained file again.)
async fn check_copy(path: &Path) -> anyhow::Result<(u64, Option<String>)> {
    let url = format!("sqlite://{}", path.display());
    let copy = Store::connect(&url, 1).await.context("opening the copy")?;
    let integrity = copy.sqlite_integrity().await?;
    anyhow::ensure!(integrity == "ok", "the copy is damaged: {integrity}");
    let report = copy.verify_audit().await?;
    if let Some((id, what)) = &report.first_bad {
        anyhow::bail!("the copy's audit chain is broken at row {id}: {what}");
    }
    copy.close().await;
    Ok((report.rows, report.last_hash))
}
