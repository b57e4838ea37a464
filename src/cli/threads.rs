//! `teleavis threads list | show`, `report`, `purge`: reading the téléexpertise record.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::{Format, UsageError, open_store, print_table};
use crate::config::Settings;
use crate::store::{ThreadDeadline, ThreadRow};

fn thread_json(t: &ThreadRow, deadline: Option<&ThreadDeadline>) -> serde_json::Value {
    let mut v = thread_fields(t);
    // The desk (issue 10): the deadline and the urgent line.
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "deadline".into(),
            json!(deadline.map(|d| d.deadline_at.to_rfc3339())),
        );
        o.insert("urgent".into(), json!(deadline.is_some_and(|d| d.urgent)));
        o.insert(
            "deadline_stopped_at".into(),
            json!(deadline.and_then(|d| d.stopped_at).map(|t| t.to_rfc3339())),
        );
    }
    v
}

fn thread_fields(t: &ThreadRow) -> serde_json::Value {
    json!({
        "id": t.id,
        "status": t.status,
        "category": t.category,
        "requester": t.requester,
        "requester_name": t.requester_name,
        "requester_rpps": t.requester_rpps,
        "taken_by": t.taken_by,
        "previous_thread": t.previous_thread,
        "created_at": t.created_at.to_rfc3339(),
        "updated_at": t.updated_at.to_rfc3339(),
        "closed_at": t.closed_at.map(|c| c.to_rfc3339()),
    })
}

pub async fn threads_list(
    settings: &Settings,
    status: Option<String>,
    category: Option<String>,
    overdue: bool,
    format: Format,
) -> anyhow::Result<()> {
    if let Some(s) = &status {
        crate::thread::Status::parse(s).map_err(|e| UsageError(format!("--status: {e}")))?;
    }
    let store = open_store(settings).await?;
    let mut threads = store
        .list_threads(status.as_deref(), category.as_deref())
        .await?;
    let deadlines: std::collections::HashMap<String, ThreadDeadline> = store
        .deadlines(None, overdue.then(Utc::now))
        .await?
        .into_iter()
        .map(|d| (d.thread_id.clone(), d))
        .collect();
    if overdue {
        // Past the deadline, not stopped, and still open.
        threads.retain(|t| {
            deadlines.contains_key(&t.id) && ["nouvelle", "en_cours"].contains(&t.status.as_str())
        });
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &threads
                    .iter()
                    .map(|t| thread_json(t, deadlines.get(&t.id)))
                    .collect::<Vec<_>>()
            )?
        ),
        Format::Table | Format::Text => print_table(
            &[
                "id",
                "status",
                "category",
                "requester",
                "created_at",
                "updated_at",
            ],
            &threads
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.status.clone(),
                        t.category.clone(),
                        t.requester.clone(),
                        t.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        t.updated_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        other => return Err(UsageError(format!("threads list has no {other:?} format")).into()),
    }
    Ok(())
}

pub async fn threads_show(settings: &Settings, id: &str, format: Format) -> anyhow::Result<()> {
    let id = crate::thread::ThreadId::parse(id)
        .map_err(|e| UsageError(e.to_string()))?
        .to_string();
    let store = open_store(settings).await?;
    let thread = store
        .get_thread(&id)
        .await?
        .ok_or_else(|| UsageError(format!("no thread {id}")))?;
    super::record_read(&store, "threads show", &id).await?;
    let messages = store.thread_messages(&id).await?;
    match format {
        Format::Json => {
            let deadline = store.deadline_of(&id).await?;
            let mut v = thread_json(&thread, deadline.as_ref());
            v["messages"] = messages
                .iter()
                .map(|m| {
                    let m = &m.message;
                    json!({
                        "direction": m.direction,
                        "kind": m.kind,
                        "from": m.from_addr,
                        "to": m.to_addrs,
                        "at": m.at.to_rfc3339(),
                        "message_id": m.message_id,
                        "author_name": m.author_name,
                        "attachments": serde_json::from_str::<serde_json::Value>(&m.attachments_json).unwrap_or_default(),
                    })
                })
                .collect();
            v["acts"] = super::billing::acts_json(&store.thread_acts(&id).await?);
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text | Format::Table => {
            println!(
                "{}  {}  catégorie {}",
                thread.id, thread.status, thread.category
            );
            println!(
                "requérant : {} {}",
                thread.requester,
                thread.requester_name.as_deref().unwrap_or("")
            );
            if let Some(t) = &thread.taken_by {
                println!("pris en charge par : {t}");
            }
            println!(
                "ouverte le {}, mise à jour le {}",
                thread.created_at.to_rfc3339(),
                thread.updated_at.to_rfc3339()
            );
            for m in &messages {
                let m = &m.message;
                println!(
                    "\n--- {} {} {} {} → {}",
                    m.at.to_rfc3339(),
                    m.direction,
                    m.kind,
                    m.from_addr,
                    m.to_addrs.join(", ")
                );
                if let Some(t) = &m.body_text {
                    println!("{}", t.trim_end());
                }
            }
        }
        other => return Err(UsageError(format!("threads show has no {other:?} format")).into()),
    }
    Ok(())
}

pub async fn report(
    settings: &Settings,
    id: &str,
    format: Format,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let tid = crate::thread::ThreadId::parse(id).map_err(|e| UsageError(e.to_string()))?;
    let id = tid.to_string();
    let store = open_store(settings).await?;
    let Some(thread) = store.thread(&tid).await? else {
        return Err(UsageError(format!("no thread {id}")).into());
    };
    super::record_read(&store, "report", &id).await?;
    let messages = store.thread_messages(&id).await?;
    let (catalogue, _) = crate::catalogue::Catalogue::compile(settings);
    let network = &settings.gateway.network;
    let mut data = crate::report::assemble(network, &catalogue, &thread, &messages, Utc::now());
    // The acts decided when the compte-rendu was sent (none before).
    data.acts = store
        .thread_acts(&id)
        .await?
        .into_iter()
        .map(|r| r.act)
        .collect();
    // Directory (issue 10): names and specialties of the people in the compte-rendu.
    let mut conn = store.pool().acquire().await?;
    crate::directory::hooks::enrich_report(&store, &mut conn, &mut data).await?;
    drop(conn);
    match format {
        Format::Text => {
            let text = crate::report::render_text(&data);
            match output {
                Some(path) => std::fs::write(&path, text)?,
                None => print!("{text}"),
            }
        }
        Format::Pdf => {
            let pdf = crate::report::render_pdf(&data)?;
            let path = output.unwrap_or_else(|| PathBuf::from(crate::report::pdf_file_name(&id)));
            std::fs::write(&path, pdf)?;
            eprintln!("written: {}", path.display());
        }
        Format::Cda | Format::Xdm => super::record::write(settings, &data, format, output)?,
        other => {
            return Err(UsageError(format!(
                "report has no {other:?} format (text, pdf, cda or xdm)"
            ))
            .into());
        }
    }
    Ok(())
}

pub(crate) fn parse_day(s: &str, key: &str) -> anyhow::Result<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| UsageError(format!("{key}: {s:?} is not a date (YYYY-MM-DD)")))?;
    Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

pub async fn purge(settings: &Settings, days: u32) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let now = Utc::now();
    let mut tx = store.begin().await?;
    let report = store
        .purge_closed_before(&mut tx, now - chrono::Duration::days(i64::from(days)), now)
        .await?;
    tx.commit().await?;
    println!(
        "purged {} threads, {} thread messages, {} raw inbound messages, {} outbox rows (audit kept)",
        report.threads.len(),
        report.messages,
        report.inbound,
        report.outbox
    );
    Ok(())
}
