//! The daemon: the IMAP intake loop, the outbox worker and housekeeping as tokio tasks, graceful
//! shutdown on SIGTERM (the message in hand is finished first), systemd notifications.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{LogFormat, LogSettings, Settings};
use crate::intake::Intake;
use crate::outbox::{Wake, Worker};
use crate::smime::SmimeEngine;
use crate::store::{Store, redact_url};

mod mailbox;

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
    return_large_buffers_promptly();
    let settings = Arc::new(settings);
    let (store, smime) = open(&settings).await?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let intake = Arc::new(Intake::new(settings.clone(), store.clone(), smime.clone()));
    if store.backend() == crate::store::Backend::Sqlite {
        // One instance by design: a claim left in the database belongs to a process that is
        // gone (killed mid-send), and its row is sent again now rather than after the lease.
        store
            .release_all_claims()
            .await
            .context("freeing the claims of a previous run")?;
    }

    let wake = Wake::default();
    // SQLite: always live. PostgreSQL: once the claim locks are taken (outbox::hold_claims).
    let (live_tx, live_rx) = watch::channel(store.backend() == crate::store::Backend::Sqlite);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(addr) = settings.metrics.listen_addr() {
        let handle = crate::metrics::install()?;
        let listener = crate::metrics::server::bind(addr).await?;
        tasks.spawn(crate::metrics::server::serve(
            listener,
            handle,
            store.clone(),
            settings.clone(),
            stop_rx.clone(),
        ));
    }
    tasks.spawn(crate::metrics::health::heartbeat(
        store.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(mailbox::intake_loop(
        settings.clone(),
        store.clone(),
        intake.clone(),
        wake.clone(),
        stop_rx.clone(),
    ));
    let mut names = Vec::new();
    for index in 0..settings.outbox.workers {
        let worker = Worker::new(
            settings.clone(),
            store.clone(),
            smime.clone(),
            index,
            live_rx.clone(),
        )?;
        names.push(worker.name().to_string());
        tasks.spawn(worker.run(stop_rx.clone(), wake.subscribe()));
    }
    tasks.spawn(crate::outbox::hold_claims(
        store.clone(),
        names,
        live_tx,
        stop_rx.clone(),
    ));
    tasks.spawn(crate::outbox::listen(
        store.clone(),
        wake.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(housekeeping(
        intake.clone(),
        wake.clone(),
        stop_tx.subscribe(),
    ));
    if store.backend() == crate::store::Backend::Sqlite {
        tasks.spawn(checkpoints(store.clone(), stop_tx.subscribe()));
    }
    tasks.spawn(deadline_tick(
        intake.clone(),
        wake.clone(),
        stop_tx.subscribe(),
    ));
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

/// Has the allocator give large buffers back to the system as soon as they are freed. A
/// 25 MiB message goes through several stages (fetched, stored, decrypted, parsed, forwarded,
/// signed, encrypted), each with its own buffer; glibc raises its mmap threshold after the
/// first such buffer is freed and serves the next ones from heaps it keeps, so the peak RSS
/// was the sum of every stage's buffers instead of those alive at once (measured with a
/// 24.5 MiB request, debug build: 452 MB, 194 MB with a fixed threshold). 1 MiB leaves the
/// everyday messages (a few hundred KiB) to the heap.
fn return_large_buffers_promptly() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::raw::c_int;
        const M_MMAP_THRESHOLD: c_int = -3;
        unsafe extern "C" {
            fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        // SAFETY: mallopt only tunes glibc's allocator; any value is valid, and a refusal
        // (return 0) leaves the default behaviour.
        let _ = unsafe { mallopt(M_MMAP_THRESHOLD, 1 << 20) };
    }
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

/// Closes idle threads and retries held messages, once a minute; wakes the outbox after (the
/// compte-rendus of closed threads, released held rows).
async fn housekeeping(intake: Arc<Intake>, wake: Wake, mut stop: watch::Receiver<bool>) {
    loop {
        match intake.housekeeping().await {
            Ok(_) => wake.notify(),
            Err(e) => warn!(error = %format!("{e:#}"), "housekeeping failed"),
        }
        if sleep_or_stop(Duration::from_secs(60), &mut stop).await {
            return;
        }
    }
}

/// SQLite: the write-ahead log copied into the database every [`CHECKPOINT_EVERY`], off the
/// path of any message (see `Store::checkpoint`). A commit that filled the log used to do it,
/// `fsync` of the database file included: in the steady-rate benchmark those were the
/// messages whose commit took 200 ms or more instead of a few.
async fn checkpoints(store: crate::store::Store, mut stop: watch::Receiver<bool>) {
    // Said once when it starts failing (a full disk, say) and once when it works again.
    let mut failing = false;
    loop {
        if sleep_or_stop(CHECKPOINT_EVERY, &mut stop).await {
            return;
        }
        match store.checkpoint().await {
            Ok(_) if failing => {
                failing = false;
                info!("checkpoints of the write-ahead log work again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                warn!(error = %format!("{e:#}"), "checkpoint of the write-ahead log failed");
            }
            Err(_) => {}
        }
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Desk (issue 10): the reminders and escalations of deadlines, from the database, every
/// `deadlines::TICK`. Safe on every instance: each step is claimed by one transaction. Wakes
/// the outbox when it queued any, like every other commit that queues mail.
async fn deadline_tick(intake: Arc<Intake>, wake: Wake, mut stop: watch::Receiver<bool>) {
    loop {
        match crate::intake::deadlines::tick(&intake, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(_) => wake.notify(),
            Err(e) => warn!(error = %format!("{e:#}"), "deadline reminders failed"),
        }
        if sleep_or_stop(crate::intake::deadlines::TICK, &mut stop).await {
            return;
        }
    }
}
