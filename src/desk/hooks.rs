//! What the intake asks the desk, one call each: the on-duty notices when a thread opens, and
//! whether a sender on the category's roster may post like a listed expert. Both read inside
//! the message's transaction, so a notice is queued with the thread or not at all.

use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

use crate::address::EmailAddress;
use crate::catalogue::Category;
use crate::config::Settings;
use crate::store::Store;
use crate::thread::Role;

/// The notices of a new thread: `(expert, text)` for each expert on duty in its category at
/// `now`. The text names no patient (it is encrypted anyway, but it says only where to look).
pub async fn on_duty_notices(
    store: &Store,
    conn: &mut AnyConnection,
    settings: &Settings,
    category: &Category,
    tid: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(EmailAddress, String)>> {
    let slots = store
        .roster_slots(conn, Some(&category.id), Some(now))
        .await?;
    let mut experts: Vec<String> = slots.into_iter().map(|s| s.expert).collect();
    experts.sort();
    experts.dedup();
    let network = if settings.gateway.network.is_empty() {
        "du réseau".to_string()
    } else {
        format!("du réseau {}", settings.gateway.network)
    };
    let mut out = Vec::new();
    for e in experts {
        let Ok(addr) = EmailAddress::parse(&e) else {
            continue;
        };
        let text = format!(
            "Bonjour,\n\nUne nouvelle demande de téléexpertise, {tid}, attend une réponse dans la \
             boîte du groupe {} ({}).\n\nVous recevez ce message car vous êtes actuellement sur \
             le planning {network} pour la catégorie {}.\n\n-- \n{}\n{}\n",
            category.name,
            category.group_address,
            category.name,
            settings.gateway.display_name,
            settings.gateway.network
        );
        out.push((addr, text));
    }
    Ok(out)
}

/// Sets the deadline of a thread being opened and returns the line stating it (for the
/// acknowledgement, after its `Catégorie :` line), plus whether the request is urgent. `tags`
/// are the plus-tags the request was sent to.
#[allow(clippy::too_many_arguments)]
pub async fn open_deadline(
    store: &Store,
    conn: &mut AnyConnection,
    settings: &Settings,
    category: &Category,
    tid: &str,
    tags: &[String],
    unlisted: &[crate::form::FieldValue],
    now: DateTime<Utc>,
) -> anyhow::Result<(String, bool)> {
    use super::deadline;
    let urgent = deadline::is_urgent(tags, unlisted);
    let due = deadline::deadline(category, urgent, now);
    store
        .insert_deadline(
            conn,
            &crate::store::ThreadDeadline {
                thread_id: tid.to_owned(),
                urgent,
                opened_at: now,
                deadline_at: due,
                stopped_at: None,
            },
        )
        .await?;
    let tz: chrono_tz::Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);
    let line = format!(
        "{}Réponse attendue au plus tard le : {}\n",
        if urgent { "Demande URGENTE. " } else { "" },
        deadline::french_time(due, tz)
    );
    Ok((line, urgent))
}

/// Stops the thread's deadline when an expert (or the group) acts or the requérant cancels.
pub async fn stop_deadline(
    store: &Store,
    conn: &mut AnyConnection,
    tid: &str,
    role: Role,
    cancelled: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if matches!(role, Role::Expert | Role::Group) || cancelled {
        store.stop_deadline(conn, tid, now).await?;
    }
    Ok(())
}

/// `role`, or `Expert` for a sender who would be `Other` but is on the category's roster.
pub async fn roster_role(
    store: &Store,
    conn: &mut AnyConnection,
    role: Role,
    sender: &EmailAddress,
    category: &Category,
) -> anyhow::Result<Role> {
    if role != Role::Other {
        return Ok(role);
    }
    Ok(
        if store
            .roster_has(conn, &category.id, &sender.base().to_string())
            .await?
        {
            Role::Expert
        } else {
            role
        },
    )
}
