//! `teleavis directory import FILE | show <address|RPPS>`: the national MSSanté directory.

use std::path::Path;

use chrono::Utc;

use super::{UsageError, open_store};
use crate::config::Settings;
use crate::directory::{self, DirectoryEntry};

/// Imports a `.txt` or `.zip` extraction, replacing the directory; prints counts and time.
pub async fn directory_import(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let s = directory::import(&store, file, Utc::now()).await?;
    println!(
        "{}: {} lines, {} entries ({} lines merged into an address already seen) in {:.1} s",
        file.display(),
        s.lines,
        s.entries,
        s.merged(),
        s.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Prints the entry of an address, or the entries of an RPPS number.
pub async fn directory_show(settings: &Settings, key: &str) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let entries: Vec<DirectoryEntry> = match directory::rpps_query(key) {
        Some(rpps) => store.directory_by_rpps(&rpps).await?,
        None if key.contains('@') => store.directory_by_address(key).await?.into_iter().collect(),
        None => {
            return Err(UsageError(format!(
                "{key:?}: expected an address or an RPPS number (11 digits, or 8 + 11 digits)"
            ))
            .into());
        }
    };
    if entries.is_empty() {
        anyhow::bail!("{key}: not in the directory");
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let rows = [
            ("address", Some(e.address.clone())),
            ("type", Some(e.kind.clone())),
            ("name", directory::display_name(e)),
            ("rpps", e.rpps.clone()),
            ("profession", e.profession.clone()),
            ("specialty", e.specialty.clone()),
            ("shown as", directory::describe(e)),
            ("organization", e.organization.clone()),
            ("postal code", e.postal_code.clone()),
            ("department", e.department.clone()),
        ];
        for (k, v) in rows {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                println!("{k:<13} {v}");
            }
        }
    }
    Ok(())
}
