//! `teleavis audit verify | list`, and the access trail: every command that shows patient data
//! (`threads show`, `report`, `quarantine show`, `billing export`) first appends an
//! `operator.read` row naming the operating-system user, so that `audit list --subject TE-…`
//! answers "who read this patient's thread" (HDS, RGPD).

use chrono::Utc;
use serde_json::json;

use super::{Format, UsageError, open_store, print_table};
use crate::config::Settings;
use crate::store::Store;

/// The audit action of a read.
pub const OPERATOR_READ: &str = "operator.read";

/// Who runs this process: `os:<user>` from the real uid (not `$USER`, which anyone can set), and
/// under sudo the invoking user as well, since root alone names no person.
pub fn operator() -> (String, serde_json::Value) {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid{}", uid.as_raw()));
    let sudo = std::env::var("SUDO_USER").ok().filter(|_| uid.is_root());
    let actor = match &sudo {
        Some(s) => format!("os:{name} (sudo: {s})"),
        None => format!("os:{name}"),
    };
    (actor, json!({"uid": uid.as_raw(), "sudo_user": sudo}))
}

/// Appends an `operator.read` row for `subject` (a thread id, `inbound:<id>`, or what a bulk
/// export covers) read by `command`, committed before anything is shown: a read that prints is
/// always on record, even when the output is cut short. For `billing export` and other readers.
pub async fn record_read(store: &Store, command: &str, subject: &str) -> anyhow::Result<()> {
    let (actor, mut details) = operator();
    details["command"] = json!(command);
    let mut tx = store.begin().await?;
    store
        .append_audit(
            &mut tx,
            &actor,
            OPERATOR_READ,
            subject,
            &details,
            Utc::now(),
        )
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn audit_verify(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let report = store.verify_audit().await?;
    match report.first_bad {
        None => {
            println!(
                "audit chain OK: {} rows, last hash {}",
                report.rows,
                report.last_hash.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        Some((id, what)) => anyhow::bail!(
            "audit chain BROKEN at row {id}: {what} ({} rows checked)",
            report.rows
        ),
    }
}

/// The newest `limit` rows (of one subject), oldest first.
pub async fn audit_list(
    settings: &Settings,
    subject: Option<String>,
    limit: i64,
    format: Format,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let rows = store.list_audit(subject.as_deref(), limit.max(1)).await?;
    match format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "at": r.at.to_rfc3339(),
                        "actor": r.actor,
                        "action": r.action,
                        "subject": r.subject,
                        "details": serde_json::from_str::<serde_json::Value>(&r.details)
                            .unwrap_or(serde_json::Value::Null),
                        "hash": r.hash,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table | Format::Text => print_table(
            &["id", "at", "actor", "action", "subject"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        r.actor.clone(),
                        r.action.clone(),
                        r.subject.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        other => return Err(UsageError(format!("audit list has no {other:?} format")).into()),
    }
    Ok(())
}
