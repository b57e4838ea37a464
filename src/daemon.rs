//! The daemon: the IMAP intake loop, the outbox worker and housekeeping as tokio tasks, graceful
//! shutdown on SIGTERM (the message in hand is finished first), systemd notifications.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{LogFormat, LogSettings, Settings};
use crate::intake::{Fetched, Intake};
use crate::mail::imap::{IdleOutcome, ImapClient};
use crate::outbox::Worker;
use crate::smime::SmimeEngine;
use crate::store::{Store, redact_url};

/// Plain logs for a terminal, JSON on request; `RUST_LOG` wins over the configured level.
pub fn init_logging(log: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(log.level.as_deref().unwrap_or("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The database, connected and migrated: the one way `run` and the command line open it.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = &settings.database.url;
    let store = Store::connect(url, settings.database.max_connections)
        .await
        .with_context(|| format!("opening the database {}", redact_url(url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

pub async fn open(settings: &Settings) -> anyhow::Result<(Store, Arc<SmimeEngine>)> {
    let store = open_store(settings).await?;
    let smime =
        SmimeEngine::load(&settings.smime).context("loading S/MIME certificates and keys")?;
    Ok((store, Arc::new(smime)))
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let (store, smime) = open(&settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let intake = Arc::new(Intake::new(settings.clone(), store.clone(), smime.clone()));

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(intake_loop(
        settings.clone(),
        store.clone(),
        intake.clone(),
        stop_rx.clone(),
    ));
    for index in 0..settings.outbox.workers {
        let worker = Worker::new(settings.clone(), store.clone(), smime.clone(), index)?;
        tasks.spawn(worker.run(stop_rx.clone()));
    }
    tasks.spawn(housekeeping(intake.clone(), stop_tx.subscribe()));
    tasks.spawn(deadline_tick(intake.clone(), stop_tx.subscribe()));
    if let Some(file) = settings.directory.file.clone() {
        tasks.spawn(crate::directory::watch::run(
            store.clone(),
            file,
            Duration::from_secs(settings.directory.check_seconds),
            stop_tx.subscribe(),
        ));
    }

    notify(&[sd_notify::NotifyState::Ready]);
    spawn_watchdog(stop_tx.subscribe());
    info!(address = %settings.gateway.address, "teleavis running");

    wait_for_signal().await;
    info!("stop requested: finishing the message in hand");
    notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "a task ended abnormally");
        }
    }
    store.close().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(false, state);
}

fn spawn_watchdog(mut stop: watch::Receiver<bool>) {
    let Some(usec) = watchdog_usec() else { return };
    let period = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        loop {
            notify(&[sd_notify::NotifyState::Watchdog]);
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
        }
    });
}

/// `WATCHDOG_USEC`, unless `WATCHDOG_PID` names another process (sd_watchdog_enabled(3): an
/// absent WATCHDOG_PID means the watchdog is ours).
fn watchdog_usec() -> Option<u64> {
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID").ok().map(|p| p.parse::<u32>()) {
        Some(Ok(pid)) if pid != std::process::id() => None,
        _ => Some(usec),
    }
}

/// Sleeps, or returns early (true) when a stop is requested.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Connects, drains the mailbox, waits in IDLE (or polls), and starts over on any error with
/// backoff. With PostgreSQL, only the holder of the mailbox lease reads the mailbox.
async fn intake_loop(
    settings: Arc<Settings>,
    store: Store,
    intake: Arc<Intake>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    let max_backoff = Duration::from_secs(300);
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
            match store.acquire_mailbox_lease(&lease_name).await {
                Ok(Some(l)) => {
                    info!("mailbox lease acquired");
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
                    if sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    continue;
                }
            }
        }
        match session(&settings, &intake, &mut stop, lease.as_mut()).await {
            Ok(()) => return,
            Err(e) => {
                warn!(error = %format!("{e:#}"), retry_in = ?backoff, "IMAP session ended");
                if sleep_or_stop(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// One IMAP session: returns Ok only when a stop was requested.
async fn session(
    settings: &Settings,
    intake: &Arc<Intake>,
    stop: &mut watch::Receiver<bool>,
    mut lease: Option<&mut crate::store::Lease>,
) -> anyhow::Result<()> {
    let imap = &settings.imap;
    let mut client = ImapClient::connect(imap).await?;
    client
        .ensure_mailboxes(&[&imap.processed_mailbox, &imap.quarantine_mailbox])
        .await?;
    let mut last_uidvalidity = None;
    loop {
        let state = client.select(&imap.mailbox).await?;
        if last_uidvalidity.is_some_and(|v| v != state.uidvalidity) {
            // Messages are matched by content hash, not UID: a renumbered mailbox is simply
            // read again and nothing is handled twice.
            warn!(old = ?last_uidvalidity, new = state.uidvalidity, "UIDVALIDITY changed");
        }
        last_uidvalidity = Some(state.uidvalidity);
        for uid in client.uids().await? {
            if *stop.borrow() {
                return Ok(());
            }
            if let Some(l) = lease.as_deref_mut()
                && !l.is_held().await
            {
                anyhow::bail!("mailbox lease lost");
            }
            let Some(raw) = client.fetch_raw(uid).await? else {
                continue;
            };
            let fetched = Fetched {
                mailbox: imap.mailbox.clone(),
                uidvalidity: state.uidvalidity,
                uid,
                raw,
            };
            // Its own task, so that even a panic on a message quarantines it instead of
            // stopping the mailbox (the copy keeps the bytes for that case).
            let copy = fetched.clone();
            let task = {
                let intake = intake.clone();
                tokio::spawn(async move { intake.handle(fetched).await })
            };
            let handled = match task.await {
                Ok(r) => r?,
                Err(e) if e.is_panic() => {
                    tracing::error!(uid, "a bug met this message: quarantined");
                    intake
                        .quarantine_failure(&copy, "panic while handling the message")
                        .await?
                }
                Err(e) => return Err(e.into()),
            };
            if crate::faults::injected("abort-after-commit") {
                // The reliability tests crash the daemon exactly between COMMIT and MOVE.
                tracing::error!("TELEAVIS_FAULT=abort-after-commit: aborting");
                std::process::abort();
            }
            // Only now, with everything committed, does the message leave the mailbox.
            client.move_to(uid, &handled.destination).await?;
            intake.moved(handled.inbound_id).await?;
        }
        if *stop.borrow() {
            return Ok(());
        }
        if client.has_idle() {
            let idle = client.idle_wait(Duration::from_secs(imap.idle_seconds));
            tokio::select! {
                r = idle => {
                    let (c, outcome) = r?;
                    client = c;
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

/// Closes idle threads and retries held messages, once a minute.
/// Desk (issue 10): the reminders and escalations of deadlines, from the database, every
/// `deadlines::TICK`. Safe on every instance: each step is claimed by one transaction.
async fn deadline_tick(intake: Arc<Intake>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = crate::intake::deadlines::tick(&intake, chrono::Utc::now()).await {
            warn!(error = %format!("{e:#}"), "deadline reminders failed");
        }
        if sleep_or_stop(crate::intake::deadlines::TICK, &mut stop).await {
            return;
        }
    }
}

async fn housekeeping(intake: Arc<Intake>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = intake.housekeeping().await {
            warn!(error = %format!("{e:#}"), "housekeeping failed");
        }
        if sleep_or_stop(Duration::from_secs(60), &mut stop).await {
            return;
        }
    }
}
