//! The mailbox side of the daemon: the IMAP session loop (lease, connect, drain, IDLE or busy
//! polling, reconnect with backoff), one message at a time through the intake, and what to do
//! when the database refuses mail (keep it in INBOX, alert the admin once).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::sleep_or_stop;
use crate::config::Settings;
use crate::intake::{Fetched, Intake};
use crate::mail::imap::{IdleOutcome, ImapClient};
use crate::outbox::Wake;
use crate::store::Store;

/// While mail keeps coming (some arrived in the last [`BUSY_FOR`]), the mailbox is polled
/// with a NOOP every [`BUSY_POLL`] instead of waiting in IDLE: servers delay IDLE
/// notifications to batch changes (Dovecot by 500 ms, `NOTIFY_DELAY_MSECS` in its
/// mailbox-watch.c), which alone would exceed the 0.2 s a request may spend in the gateway.
/// (100 ms was tried: the daemon's CPU per request did not measurably drop, while the median
/// time to the acknowledgement rose from ~55 to ~90 ms.) After a quiet [`BUSY_FOR`], back to
/// IDLE, so an idle desk costs the server nothing.
const BUSY_POLL: Duration = Duration::from_millis(40);
const BUSY_FOR: Duration = Duration::from_secs(10);

/// The first IMAP reconnect delay, and the cap of its doubling.
const IMAP_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// `base` with jitter: between half of it and all of it, so that instances (or a gateway and
/// its server restarting) do not retry in step.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::random_range(0.5..=1.0))
}

/// Connects, drains the mailbox, waits in IDLE (or polls), and starts over on any error with
/// backoff: doubling from 1 s up to 60 s, with jitter, back to the first step after a session
/// that worked (handled a message or read the mailbox to the end), so a short blip after an
/// old outage is recovered in about a second. With PostgreSQL, only the holder of the mailbox lease reads
/// the mailbox.
pub(super) async fn intake_loop(
    settings: Arc<Settings>,
    store: Store,
    intake: Arc<Intake>,
    wake: Wake,
    mut stop: watch::Receiver<bool>,
) {
    let (first_backoff, max_backoff) = IMAP_BACKOFF;
    let mut backoff = first_backoff;
    let mut db_outage = DbOutage::default();
    let lease_name = format!(
        "mailbox:{}:{}",
        settings.imap.username, settings.imap.mailbox
    );
    let mut lease: Option<crate::store::Lease> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let held = match lease.as_mut() {
            Some(l) => l.is_held().await,
            None => false,
        };
        if !held {
            crate::metrics::health::set_lease_held(false);
            match store.acquire_mailbox_lease(&lease_name).await {
                Ok(Some(l)) => {
                    info!("mailbox lease acquired");
                    crate::metrics::health::set_lease_held(true);
                    lease = Some(l);
                }
                Ok(None) => {
                    if sleep_or_stop(Duration::from_secs(2), &mut stop).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "cannot take the mailbox lease");
                    db_outage.failed(&settings, &intake, &anyhow::Error::from(e));
                    if sleep_or_stop(jittered(backoff), &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let mut worked = false;
        match session(
            &settings,
            &intake,
            &wake,
            &mut stop,
            lease.as_mut(),
            &mut worked,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                if worked {
                    backoff = first_backoff;
                    db_outage = DbOutage::default();
                }
                if is_database_error(&e) {
                    db_outage.failed(&settings, &intake, &e);
                }
                let delay = jittered(backoff);
                warn!(error = %format!("{e:#}"), retry_in = ?delay, "IMAP session ended");
                if sleep_or_stop(delay, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Whether the database is behind an error (as opposed to IMAP or a message).
fn is_database_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::store::StoreError>().is_some()
            || c.downcast_ref::<sqlx::Error>().is_some()
    })
}

/// Sessions that failed in a row on the database (full disk, server down): the messages stay
/// in the mailbox, and the admin is alerted once per outage, straight over SMTP since the
/// outbox is in that very database.
#[derive(Default)]
struct DbOutage {
    failures: u32,
    alerted: bool,
}

impl DbOutage {
    /// Failures in a row before the alert: a lone one is a blip (a restart, a lock).
    const ALERT_AFTER: u32 = 2;

    fn failed(&mut self, settings: &Arc<Settings>, intake: &Arc<Intake>, e: &anyhow::Error) {
        self.failures += 1;
        error!(failures = self.failures, error = %format!("{e:#}"),
            "the database refuses the mail: it stays in the mailbox until the database accepts it");
        if self.failures < Self::ALERT_AFTER || self.alerted {
            return;
        }
        self.alerted = true;
        let text = format!(
            "La base de données de la passerelle refuse les écritures (disque plein ? serveur \
             arrêté ?).\n\nLes messages reçus restent dans la boîte {} et seront traités dès \
             qu'elle les acceptera ; rien n'est perdu.\n\nErreur : {e:#}\n",
            settings.imap.mailbox
        );
        let (settings, intake) = (settings.clone(), intake.clone());
        tokio::spawn(async move {
            let sent = crate::outbox::alert_admin_directly(
                &settings,
                &intake.store,
                &intake.smime,
                "[teleavis] Base de données indisponible",
                text,
            )
            .await;
            match sent {
                Ok(()) => info!("admin alerted: database unavailable"),
                Err(e) => error!(error = %format!("{e:#}"), "cannot alert the admin"),
            }
        });
    }
}

/// One IMAP session: returns Ok only when a stop was requested. Sets `worked` once it has
/// handled a message or read the mailbox to the end (a session that logs in and then fails on
/// every message, the database being full say, does not reset the backoff).
async fn session(
    settings: &Settings,
    intake: &Arc<Intake>,
    wake: &Wake,
    stop: &mut watch::Receiver<bool>,
    mut lease: Option<&mut crate::store::Lease>,
    worked: &mut bool,
) -> anyhow::Result<()> {
    let imap = &settings.imap;
    let mut client = ImapClient::connect(imap).await?;
    let _up = crate::metrics::health::imap_session();
    client
        .ensure_mailboxes(&[&imap.processed_mailbox, &imap.quarantine_mailbox])
        .await?;
    let mut last_uidvalidity = None;
    // When mail last came: while it keeps coming, the mailbox is polled (see BUSY_POLL).
    let mut last_mail: Option<std::time::Instant> = None;
    loop {
        let state = client.select(&imap.mailbox).await?;
        crate::metrics::health::imap_contact();
        if last_uidvalidity.is_some_and(|v| v != state.uidvalidity) {
            // Messages are matched by content hash, not UID: a renumbered mailbox is simply
            // read again and nothing is handled twice.
            warn!(old = ?last_uidvalidity, new = state.uidvalidity, "UIDVALIDITY changed");
        }
        last_uidvalidity = Some(state.uidvalidity);
        let uids = client.uids().await?;
        if !uids.is_empty() {
            last_mail = Some(std::time::Instant::now());
        }
        for uid in uids {
            if *stop.borrow() {
                return Ok(());
            }
            if let Some(l) = lease.as_deref_mut()
                && !l.is_held().await
            {
                anyhow::bail!("mailbox lease lost");
            }
            let started = std::time::Instant::now();
            let handled = match client.size(uid).await? {
                None => continue,
                // Refused from its size: the body is never downloaded.
                Some(size) if u64::from(size) > settings.limits.max_message_bytes => {
                    let Some(headers) = client.fetch_header(uid).await? else {
                        continue;
                    };
                    let f = Fetched {
                        mailbox: imap.mailbox.clone(),
                        uidvalidity: state.uidvalidity,
                        uid,
                        raw: headers,
                    };
                    warn!(
                        uid,
                        size, "message over limits.max_message_bytes: not downloaded"
                    );
                    intake.quarantine_oversized(f, u64::from(size)).await?
                }
                Some(_) => {
                    let Some(raw) = client.fetch_raw(uid).await? else {
                        continue;
                    };
                    let fetched = Fetched {
                        mailbox: imap.mailbox.clone(),
                        uidvalidity: state.uidvalidity,
                        uid,
                        raw,
                    };
                    handle_one(intake, &mut client, fetched).await?
                }
            };
            crate::metrics::record_intake(&handled.outcome, started.elapsed());
            // Committed: what it queued may leave now, while the message is moved.
            wake.notify();
            if crate::faults::injected("abort-after-commit") {
                // The reliability tests crash the daemon exactly between COMMIT and MOVE.
                tracing::error!("TELEAVIS_FAULT=abort-after-commit: aborting");
                std::process::abort();
            }
            // Only now, with everything committed, does the message leave the mailbox.
            client.move_to(uid, &handled.destination).await?;
            intake.moved(handled.inbound_id).await?;
            *worked = true;
        }
        if *stop.borrow() {
            return Ok(());
        }
        // The mailbox was read to the end: this session worked.
        *worked = true;
        if last_mail.is_some_and(|t| t.elapsed() < BUSY_FOR) {
            // Busy: a NOOP every BUSY_POLL until new mail shows or it has been quiet.
            loop {
                if sleep_or_stop(BUSY_POLL, stop).await {
                    return Ok(());
                }
                if client.has_news().await? || last_mail.is_none_or(|t| t.elapsed() >= BUSY_FOR) {
                    break;
                }
            }
            continue;
        }
        if client.has_idle() {
            let idle = client.idle_wait(Duration::from_secs(imap.idle_seconds));
            tokio::select! {
                r = idle => {
                    let (c, outcome) = r?;
                    client = c;
                    crate::metrics::health::imap_contact();
                    if matches!(outcome, IdleOutcome::Timeout) {
                        client.noop().await?;
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        } else if sleep_or_stop(Duration::from_secs(imap.poll_seconds), stop).await {
            return Ok(());
        }
    }
}

/// Runs the pipeline on one message in its own task, so that even a panic on a message
/// quarantines it instead of stopping the mailbox. The bytes are not kept aside for that case
/// (a second copy of every message): the message is still in the mailbox and fetched again.
async fn handle_one(
    intake: &Arc<Intake>,
    client: &mut ImapClient,
    fetched: Fetched,
) -> anyhow::Result<crate::intake::Handled> {
    let (mailbox, uidvalidity, uid) = (fetched.mailbox.clone(), fetched.uidvalidity, fetched.uid);
    let task = {
        let intake = intake.clone();
        tokio::spawn(async move { intake.handle(fetched).await })
    };
    match task.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => {
            tracing::error!(uid, "a bug met this message: quarantined");
            let raw = client
                .fetch_raw(uid)
                .await?
                .context("the message vanished after a panic")?;
            let copy = Fetched {
                mailbox,
                uidvalidity,
                uid,
                raw,
            };
            intake
                .quarantine_failure(&copy, "panic while handling the message")
                .await
        }
        Err(e) => Err(e.into()),
    }
}
