//! Waking the outbox workers when there is work, so a queued message leaves at once instead of
//! at the next poll: the daemon calls [`Wake::notify`] after each commit that may have queued
//! mail; with PostgreSQL, [`listen`] turns the `NOTIFY` every instance's enqueue issues at
//! commit into the same wake-up (so a message queued by one instance can leave through
//! another's idle worker); and the claim holder task ([`hold_claims`]) keeps the liveness
//! locks that let a dead instance's claims be taken over at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::store::Store;

/// A wake-up counter shared by the daemon's tasks: every worker sees every increment that
/// happened since it last looked, so a notification sent while a worker is busy is not lost.
#[derive(Clone, Debug)]
pub struct Wake(Arc<watch::Sender<u64>>);

impl Default for Wake {
    fn default() -> Self {
        Wake(Arc::new(watch::channel(0).0))
    }
}

impl Wake {
    /// Tells every worker to look for due rows.
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A worker's end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// With PostgreSQL, wakes the workers on every `NOTIFY teleavis_outbox`, and once more after a
/// lost listening session is re-established (notifications may have been missed then).
/// Returns at once on SQLite, and when `stop` turns true.
pub async fn listen(store: Store, wake: Wake, mut stop: watch::Receiver<bool>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let listener = tokio::select! {
            l = store.outbox_listener() => l,
            _ = stop.changed() => return,
        };
        let mut listener = match listener {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "outbox: cannot listen for notifications; polling meanwhile");
                if sleep_or_stop(retry, &mut stop).await {
                    return;
                }
                retry = (retry * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        retry = Duration::from_secs(1);
        // Rows queued before we listened are found by this first look.
        wake.notify();
        loop {
            let got = tokio::select! {
                g = listener.next() => g,
                _ = stop.changed() => return,
            };
            match got {
                Ok(_) => wake.notify(),
                Err(e) => {
                    warn!(error = %e, "outbox: notification session lost");
                    if sleep_or_stop(retry, &mut stop).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// With PostgreSQL, holds the liveness locks of this process's workers (`names`) and keeps
/// `live` true while they are held: workers claim nothing while it is false, and give up a send
/// in flight when it turns false (another instance may take the row from then on). Sets `live`
/// true and returns at once on SQLite.
pub async fn hold_claims(
    store: Store,
    names: Vec<String>,
    live: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    const CHECK: Duration = Duration::from_secs(1);
    loop {
        match store.hold_claims(&names).await {
            Ok(None) => {
                let _ = live.send(true);
                return;
            }
            Ok(Some(mut holder)) => {
                info!(workers = names.len(), "outbox claim locks held");
                let _ = live.send(true);
                loop {
                    if sleep_or_stop(CHECK, &mut stop).await {
                        return;
                    }
                    if !holder.is_alive().await {
                        let _ = live.send(false);
                        break;
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "outbox: cannot take the claim locks; not sending meanwhile");
                if sleep_or_stop(CHECK, &mut stop).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps, or returns early (true) when a stop is requested.
pub(crate) async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
