//! Housekeeping's closing of idle threads: each in its own transaction, through the same
//! transition table and action interpreter as a `#clore`, with a compte-rendu.

use chrono::{DateTime, Utc};
use tracing::info;

use super::Intake;
use super::effects::{self, Applied};
use crate::thread::{self, Categories, Event, Role};

/// Closes threads idle for `auto_close_days` (0: never).
pub async fn auto_close(intake: &Intake, now: DateTime<Utc>) -> anyhow::Result<()> {
    let days = i64::from(intake.settings.gateway.auto_close_days);
    if days == 0 {
        return Ok(());
    }
    close_idle_since(intake, now - chrono::Duration::days(days), now).await
}

/// Closes the threads without activity since `cutoff`; `now` stamps what it writes.
pub async fn close_idle_since(
    intake: &Intake,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let days = i64::from(intake.settings.gateway.auto_close_days);
    let known = intake.catalogue.ids();
    for t in intake.store.idle(cutoff).await? {
        let Some(category) = intake.catalogue.get(&t.category) else {
            continue;
        };
        let categories = Categories {
            current: &category.id,
            known: &known,
        };
        let Ok(outcome) = thread::apply(t.status, Role::Group, &Event::AutoClose, &categories)
        else {
            continue;
        };
        let after = t.after(&outcome, &intake.settings.gateway.address, now);
        let tid = t.id.to_string();
        let mut tx = intake.store.begin().await?;
        intake.store.save_thread(&mut tx, &after).await?;
        let detail = serde_json::json!({"from_status": t.status.as_str(), "idle_days": days});
        intake
            .store
            .append_audit(&mut tx, "gateway", "thread.auto_closed", &tid, &detail, now)
            .await?;
        let applied = Applied {
            thread: &after,
            category,
            previous_category: category,
            cause: None,
            deadline_line: None,
        };
        effects::run(intake, &mut tx, now, &applied, &outcome.actions).await?;
        tx.commit().await?;
        info!(thread = %tid, "closed for inactivity");
    }
    Ok(())
}
