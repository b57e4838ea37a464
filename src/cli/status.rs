//! `teleavis status [--format json]`: health at a glance, for people and monitoring probes.
//! Exit 0 when healthy, 1 when something needs a person (DESIGN.md, *Operations*): a held
//! outbox row, a row failed in the last `--failed-hours`, no IMAP contact for
//! `--imap-max-age` seconds (or no instance running at all), an overdue urgent thread.
//!
//! Everything comes from the database (the daemon's heartbeat in `instances`), so the probe runs
//! as its own process, on any host that reaches the database. The first line of the text output
//! is a one-line summary, as Nagios and Centreon show it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Format, UsageError, open_store};
use crate::config::Settings;
use crate::metrics::health::HEARTBEAT;

/// The thresholds of `status`.
#[derive(Debug, Clone, Copy)]
pub struct StatusLimits {
    pub imap_max_age_seconds: u64,
    pub failed_hours: u64,
}

/// Health problems found: `status` exits 1 with them.
#[derive(Debug, thiserror::Error)]
#[error("needs attention: {}", .0.join("; "))]
pub struct NeedsAttention(pub Vec<String>);

fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    (now - t).num_seconds().max(0)
}

pub async fn status(
    settings: &Settings,
    limits: StatusLimits,
    format: Format,
) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let now = Utc::now();
    let instances = store.instances().await?;
    // An instance is live while its heartbeat is fresher than a few periods.
    let live_within = (HEARTBEAT * 4).as_secs() as i64;
    let live: Vec<_> = instances
        .iter()
        .filter(|i| i.stopped_at.is_none() && age(now, i.heartbeat_at) <= live_within)
        .collect();
    let lease_holder = live.iter().find(|i| i.lease_held).map(|i| i.name.clone());
    let last_contact = instances.iter().filter_map(|i| i.imap_contact_at).max();
    let snap = store.ops_snapshot().await?;
    let count = |state: &str| {
        snap.outbox
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    let failed_recent = store
        .failed_outbox_since(now - chrono::Duration::hours(limits.failed_hours as i64))
        .await?;
    let quarantine: BTreeMap<String, i64> = store
        .quarantine_by_reason_since(now - chrono::Duration::hours(24))
        .await?
        .into_iter()
        .collect();
    let overdue = store.overdue_threads(now).await?;
    let overdue_urgent = overdue.iter().filter(|(_, urgent)| *urgent).count();
    let head = store.audit_head().await?;

    let mut problems = Vec::new();
    if count("held") > 0 {
        problems.push(format!("{} held outbox row(s)", count("held")));
    }
    if failed_recent > 0 {
        problems.push(format!(
            "{failed_recent} outbox row(s) failed in the last {} h",
            limits.failed_hours
        ));
    }
    let max_age = limits.imap_max_age_seconds as i64;
    if live.is_empty() {
        problems.push("no teleavis instance is running (no heartbeat)".to_owned());
    }
    // Never reached: counted from the start of the newest instance, which gets time to log in.
    let since = last_contact.or_else(|| live.iter().map(|i| i.started_at).max());
    match since {
        Some(t) if age(now, t) <= max_age => {}
        Some(t) if last_contact.is_some() => {
            problems.push(format!("no IMAP contact for {} s", age(now, t)))
        }
        _ => problems.push("the IMAP server was never reached".to_owned()),
    }
    if overdue_urgent > 0 {
        problems.push(format!("{overdue_urgent} overdue urgent thread(s)"));
    }

    let oldest = snap.oldest_pending.map(|t| age(now, t));
    let v = json!({
        "healthy": problems.is_empty(),
        "problems": problems,
        "version": crate::VERSION,
        "lease_holder": lease_holder,
        "instances": live.iter().map(|i| json!({
            "name": i.name,
            "version": i.version,
            "started_at": i.started_at.to_rfc3339(),
            "heartbeat_at": i.heartbeat_at.to_rfc3339(),
            "lease_held": i.lease_held,
            "imap_connected": i.imap_connected,
        })).collect::<Vec<_>>(),
        "last_imap_contact": last_contact.map(|t| t.to_rfc3339()),
        "imap_contact_age_seconds": last_contact.map(|t| age(now, t)),
        "outbox": snap.outbox.iter().map(|(s, n)| (s.clone(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
        "outbox_oldest_pending_seconds": oldest,
        "outbox_failed_recent": failed_recent,
        "quarantine_24h": quarantine,
        "overdue_threads": overdue.len(),
        "overdue_urgent_threads": overdue_urgent,
        "audit_head": head.as_ref().map(|h| json!({
            "id": h.id, "at": h.at.to_rfc3339(), "hash": h.hash,
        })),
    });
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text | Format::Table => {
            if problems.is_empty() {
                println!("teleavis OK - {}", crate::VERSION);
            } else {
                println!("teleavis ATTENTION - {}", problems.join("; "));
            }
            println!("version:            {}", crate::VERSION);
            println!(
                "lease holder:       {}",
                lease_holder.as_deref().unwrap_or("none")
            );
            for i in &live {
                println!(
                    "instance:           {} {} (IMAP {})",
                    i.name,
                    i.version,
                    if i.imap_connected {
                        "connected"
                    } else {
                        "disconnected"
                    }
                );
            }
            println!(
                "last IMAP contact:  {}",
                last_contact.map_or("never".to_owned(), |t| format!(
                    "{} ({} s ago)",
                    t.to_rfc3339(),
                    age(now, t)
                ))
            );
            let states: Vec<String> = snap
                .outbox
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            println!(
                "outbox:             {}; oldest pending {}",
                states.join(", "),
                oldest.map_or("-".to_owned(), |s| format!("{s} s"))
            );
            let q: Vec<String> = quarantine.iter().map(|(r, n)| format!("{r} {n}")).collect();
            println!(
                "quarantine (24 h):  {}",
                if q.is_empty() {
                    "none".to_owned()
                } else {
                    q.join(", ")
                }
            );
            println!(
                "overdue threads:    {} ({overdue_urgent} urgent)",
                overdue.len()
            );
            println!(
                "audit head:         {}",
                head.map_or("empty".to_owned(), |h| format!("row {} {}", h.id, h.hash))
            );
        }
        other => return Err(UsageError(format!("status has no {other:?} format")).into()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(NeedsAttention(problems).into())
    }
}
