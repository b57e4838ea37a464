//! `teleavis quarantine list | show | reprocess`: rejected mail, its reason, a second chance.

use std::sync::Arc;

use super::{Format, UsageError, open_store, print_table};
use crate::config::Settings;
use crate::intake::{Intake, Outcome};

pub async fn quarantine_list(settings: &Settings, format: Format) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let rows = store.list_quarantine().await?;
    match format {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id,
                        "received_at": r.received_at.to_rfc3339(),
                        "from": r.from_addr,
                        "message_id": r.message_id,
                        "reason": r.reason,
                        "detail": r.detail,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Table | Format::Text => print_table(
            &["id", "received_at", "from", "message_id", "reason"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.received_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        r.from_addr.clone().unwrap_or_default(),
                        r.message_id.clone().unwrap_or_default(),
                        r.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        other => return Err(UsageError(format!("quarantine list has no {other:?} format")).into()),
    }
    Ok(())
}

pub async fn quarantine_show(settings: &Settings, id: i64) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let row = store
        .get_inbound(id)
        .await?
        .ok_or_else(|| UsageError(format!("no message {id}")))?;
    super::record_read(&store, "quarantine show", &format!("inbound:{id}")).await?;
    println!("id:          {}", row.meta.id);
    println!("received_at: {}", row.meta.received_at.to_rfc3339());
    println!(
        "from:        {}",
        row.meta.from_addr.as_deref().unwrap_or("-")
    );
    println!(
        "message_id:  {}",
        row.meta.message_id.as_deref().unwrap_or("-")
    );
    println!("sha256:      {}", row.meta.sha256);
    println!("size:        {}", row.raw.len());
    println!("outcome:     {}", row.meta.outcome);
    println!("reason:      {}", row.meta.reason.as_deref().unwrap_or("-"));
    if let Some(reason) = row
        .meta
        .reason
        .as_deref()
        .and_then(crate::intake::Reason::parse)
    {
        println!("             {}", reason.explanation_fr());
    }
    println!("detail:      {}", row.meta.detail.as_deref().unwrap_or("-"));
    Ok(())
}

pub async fn quarantine_reprocess(settings: &Settings, id: i64) -> anyhow::Result<()> {
    let settings = Arc::new(settings.clone());
    let (store, smime) = crate::daemon::open(&settings).await?;
    let row = store
        .get_inbound(id)
        .await?
        .ok_or_else(|| UsageError(format!("no message {id}")))?;
    if row.meta.outcome != "quarantined" {
        return Err(UsageError(format!(
            "message {id} is not in quarantine (outcome {})",
            row.meta.outcome
        ))
        .into());
    }
    let intake = Intake::new(settings, store, smime);
    let handled = intake.reprocess(id).await?;
    match handled.outcome {
        Outcome::Processed { thread } => {
            println!(
                "message {id} processed{}",
                thread.map(|t| format!(" (thread {t})")).unwrap_or_default()
            )
        }
        Outcome::Quarantined { reason } => {
            println!(
                "message {id} still quarantined: {} — {}",
                reason.code(),
                reason.explanation_fr()
            )
        }
        Outcome::Duplicate { of } => println!("message {id} is a duplicate of {of}"),
    }
    Ok(())
}
