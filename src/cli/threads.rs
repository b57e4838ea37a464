//! `teleavis threads list | show`, `report`, `stats`, `purge`: reading the téléexpertise record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::{Format, UsageError, csv_field, open_store, print_table};
use crate::config::Settings;
use crate::form::RequestForm;
use crate::store::ThreadRow;

fn thread_json(t: &ThreadRow) -> serde_json::Value {
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
    format: Format,
) -> anyhow::Result<()> {
    if let Some(s) = &status {
        crate::thread::Status::parse(s).map_err(|e| UsageError(format!("--status: {e}")))?;
    }
    let store = open_store(settings).await?;
    let threads = store
        .list_threads(status.as_deref(), category.as_deref())
        .await?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&threads.iter().map(thread_json).collect::<Vec<_>>())?
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
            let mut v = thread_json(&thread);
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

fn parse_day(s: &str, key: &str) -> anyhow::Result<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| UsageError(format!("{key}: {s:?} is not a date (YYYY-MM-DD)")))?;
    Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// The department of the requérant: a `departement` or `code_postal` field of the form, when a
/// category asks for it.
fn department(form: Option<&RequestForm>) -> String {
    form.and_then(|f| {
        f.extra.iter().find_map(|v| match v.key.as_str() {
            "departement" => Some(v.value.trim().to_string()),
            "code_postal" => Some(v.value.trim().chars().take(2).collect()),
            _ => None,
        })
    })
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "inconnu".into())
}

fn specialty(form: Option<&RequestForm>) -> String {
    form.and_then(|f| {
        f.extra
            .iter()
            .find(|v| v.key == "specialite")
            .map(|v| v.value.trim().to_string())
    })
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "inconnue".into())
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

pub async fn stats(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    by: &str,
    format: Format,
) -> anyhow::Result<()> {
    if !["month", "category", "department", "specialty"].contains(&by) {
        return Err(UsageError(format!(
            "--by {by:?}: expected month, category, department or specialty"
        ))
        .into());
    }
    let from = match from {
        Some(s) => parse_day(&s, "--from")?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    // --to is inclusive: the whole day.
    let to = match to {
        Some(s) => parse_day(&s, "--to")? + chrono::Duration::days(1),
        None => Utc::now() + chrono::Duration::days(1),
    };
    let store = open_store(settings).await?;
    let rows = store.thread_stats_rows(from, to).await?;
    let forms: HashMap<String, Option<RequestForm>> = store
        .list_threads(None, None)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), serde_json::from_str(&t.form_json).ok()))
        .collect();
    let tz: chrono_tz::Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);
    #[derive(Default)]
    struct Group {
        requests: usize,
        requesters: BTreeSet<String>,
        minutes: Vec<i64>,
        closed: usize,
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for r in &rows {
        let form = forms.get(&r.thread_id).and_then(|f| f.as_ref());
        let key = match by {
            "month" => r.created_at.with_timezone(&tz).format("%Y-%m").to_string(),
            "category" => r.category.clone(),
            "department" => department(form),
            _ => specialty(form),
        };
        let g = groups.entry(key).or_default();
        g.requests += 1;
        g.requesters.insert(r.requester.clone());
        if let Some(a) = r.first_answer_at {
            g.minutes.push((a - r.created_at).num_minutes());
        }
        if r.status == "terminee" {
            g.closed += 1;
        }
    }
    let header = [
        by,
        "requests",
        "distinct_requesters",
        "answered",
        "median_response_minutes",
        "mean_response_minutes",
        "closed",
    ];
    let table: Vec<Vec<String>> = groups
        .iter_mut()
        .map(|(k, g)| {
            let answered = g.minutes.len();
            let mean = (answered > 0).then(|| g.minutes.iter().sum::<i64>() / answered as i64);
            vec![
                k.clone(),
                g.requests.to_string(),
                g.requesters.len().to_string(),
                answered.to_string(),
                median(&mut g.minutes)
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                mean.map(|m| m.to_string()).unwrap_or_default(),
                g.closed.to_string(),
            ]
        })
        .collect();
    match format {
        Format::Table | Format::Text => {
            print_table(&header, &table);
            let all: BTreeSet<&str> = rows.iter().map(|r| r.requester.as_str()).collect();
            println!(
                "\n{} requests, {} distinct requérants",
                rows.len(),
                all.len()
            );
        }
        Format::Csv => {
            println!("{}", header.join(","));
            for r in &table {
                println!(
                    "{}",
                    r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",")
                );
            }
        }
        Format::Json => {
            let v: Vec<_> = table
                .iter()
                .map(|r| {
                    let num = |s: &String| s.parse::<i64>().ok();
                    json!({
                        "group": r[0], "requests": num(&r[1]), "distinct_requesters": num(&r[2]), "answered": num(&r[3]),
                        "median_response_minutes": num(&r[4]), "mean_response_minutes": num(&r[5]), "closed": num(&r[6]),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        other @ (Format::Pdf | Format::Cda | Format::Xdm) => {
            return Err(UsageError(format!("stats has no {other:?} format")).into());
        }
    }
    Ok(())
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
