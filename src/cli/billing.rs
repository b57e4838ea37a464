//! `teleavis billing export`: the acts of a period for the billing office (CSV or JSON), and
//! the `acts` of `threads show --format json`.

use chrono::NaiveDate;
use serde_json::{Value, json};

use super::{Format, UsageError, open_store};
use crate::config::Settings;
use crate::store::ActRow;

/// `{code, doctor_rpps, amount_eur, billable, reason}` per act, as the contract names them.
pub(crate) fn acts_json(rows: &[ActRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "code": r.act.code,
                "doctor_rpps": r.act.doctor_rpps,
                "doctor_name": r.act.doctor_name,
                "day": r.act.day.format("%Y-%m-%d").to_string(),
                "amount_eur": r.act.amount_eur(),
                "billable": r.act.billable,
                "reason": r.act.reason,
            })
        })
        .collect()
}

fn day(s: &str, key: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| UsageError(format!("{key} {s:?}: expected YYYY-MM-DD")).into())
}

/// A CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180).
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

const HEADER: [&str; 14] = [
    "thread",
    "date",
    "act",
    "amount_eur",
    "billable",
    "reason",
    "doctor_rpps",
    "doctor_name",
    "patient_ins",
    "patient_birth_name",
    "patient_used_name",
    "patient_first_names",
    "patient_birth_date",
    "patient_sex",
];

pub async fn billing_export(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let from = from.as_deref().map(|s| day(s, "--from")).transpose()?;
    let to = to.as_deref().map(|s| day(s, "--to")).transpose()?;
    let store = open_store(settings).await?;
    let rows = store.acts_between(from, to).await?;
    // Each thread whose patient the export names is read: on record before it is printed.
    let mut threads: Vec<&str> = rows.iter().map(|r| r.thread_id.as_str()).collect();
    threads.sort_unstable();
    threads.dedup();
    for thread in threads {
        super::record_read(&store, "billing export", thread).await?;
    }
    let records: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let p: Value = serde_json::from_str(&r.patient_json).unwrap_or_default();
            let f = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            vec![
                r.thread_id.clone(),
                r.act.day.format("%Y-%m-%d").to_string(),
                r.act.code.clone(),
                format!("{:.2}", r.act.amount_eur()),
                if r.act.billable { "oui" } else { "non" }.to_owned(),
                r.act.reason.clone().unwrap_or_default(),
                r.act.doctor_rpps.clone().unwrap_or_default(),
                r.act.doctor_name.clone(),
                f("ins"),
                f("birth_name"),
                f("used_name"),
                f("first_names"),
                f("birth_date"),
                f("sex"),
            ]
        })
        .collect();
    match format {
        Format::Csv => {
            println!("{}", HEADER.join(","));
            for r in &records {
                println!("{}", r.iter().map(|c| csv(c)).collect::<Vec<_>>().join(","));
            }
        }
        Format::Json => {
            let v: Vec<Value> = rows
                .iter()
                .zip(&records)
                .map(|(row, rec)| {
                    let mut o = serde_json::Map::new();
                    for (k, v) in HEADER.iter().zip(rec) {
                        o.insert((*k).to_owned(), json!(v));
                    }
                    o.insert("amount_eur".into(), json!(row.act.amount_eur()));
                    o.insert("billable".into(), json!(row.act.billable));
                    o.insert("reason".into(), json!(row.act.reason));
                    o.insert("doctor_rpps".into(), json!(row.act.doctor_rpps));
                    Value::Object(o)
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        other => {
            return Err(UsageError(format!(
                "billing export has no {other:?} format (csv or json)"
            ))
            .into());
        }
    }
    Ok(())
}
