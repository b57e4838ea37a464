//! `teleavis roster import FILE | show [--category C] [--at TIME]`: who is on duty.

use std::collections::BTreeSet;
use std::path::Path;

use super::{UsageError, open_store, print_table};
use crate::config::Settings;
use crate::desk::roster;

/// Replaces, in one transaction, the roster of every category the file names.
pub async fn roster_import(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let slots = roster::read(file, settings)?;
    let categories: Vec<String> = slots
        .iter()
        .map(|s| s.category.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let store = open_store(settings).await?;
    let mut tx = store.begin().await?;
    store.roster_replace(&mut tx, &categories, &slots).await?;
    store
        .append_audit(
            &mut tx,
            "cli",
            "roster.import",
            &file.display().to_string(),
            &serde_json::json!({"categories": categories, "slots": slots.len()}),
            chrono::Utc::now(),
        )
        .await?;
    tx.commit().await?;
    println!(
        "{}: {} slots for {}",
        file.display(),
        slots.len(),
        categories.join(", ")
    );
    Ok(())
}

/// The slots of a category (or all) holding a time (or all), in local time.
pub async fn roster_show(
    settings: &Settings,
    category: Option<&str>,
    at: Option<&str>,
) -> anyhow::Result<()> {
    let tz: chrono_tz::Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);
    let at = match at {
        Some(t) => Some(roster::local_time(t, tz).ok_or_else(|| {
            UsageError(format!(
                "--at {t:?}: expected a local date-time like 2026-12-01T08:00"
            ))
        })?),
        None => None,
    };
    if let Some(c) = category
        && settings.category(c).is_none()
    {
        return Err(UsageError(format!("--category {c:?}: no such category")).into());
    }
    let store = open_store(settings).await?;
    let mut conn = store.pool().acquire().await?;
    let slots = store.roster_slots(&mut conn, category, at).await?;
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
    };
    let rows: Vec<Vec<String>> = slots
        .iter()
        .map(|s| {
            vec![
                s.category.clone(),
                local(s.starts_at),
                local(s.ends_at),
                s.expert.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("nobody on duty");
    } else {
        print_table(&["category", "start", "end", "expert"], &rows);
    }
    Ok(())
}
