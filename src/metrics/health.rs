//! What this process knows about its own health (IMAP session up, last answer from the IMAP
//! server, mailbox lease held), kept in memory for the gauges and written to the `instances`
//! table every 15 s so that `teleavis status`, another process, can read it.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metrics::gauge;
use tokio::sync::{Notify, watch};
use tracing::warn;

use crate::store::{InstanceBeat, Store};

/// How often the heartbeat is written.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

static IMAP_CONNECTED: AtomicBool = AtomicBool::new(false);
static LEASE_HELD: AtomicBool = AtomicBool::new(false);
/// Unix milliseconds of the last IMAP answer; 0: never.
static IMAP_CONTACT_MS: AtomicI64 = AtomicI64::new(0);
/// Wakes the heartbeat when the session or the lease changes, so `status` learns at once.
static CHANGED: Notify = Notify::const_new();

/// The IMAP server answered (login, select, fetch, IDLE wake-up).
pub fn imap_contact() {
    IMAP_CONTACT_MS.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
}

/// Marks the IMAP session up until the guard is dropped (the session ended, whatever way).
pub fn imap_session() -> ImapSession {
    IMAP_CONNECTED.store(true, Ordering::Relaxed);
    gauge!(super::IMAP_CONNECTED).set(1.0);
    imap_contact();
    CHANGED.notify_one();
    ImapSession(())
}

pub struct ImapSession(());

impl Drop for ImapSession {
    fn drop(&mut self) {
        IMAP_CONNECTED.store(false, Ordering::Relaxed);
        gauge!(super::IMAP_CONNECTED).set(0.0);
        CHANGED.notify_one();
    }
}

pub fn set_lease_held(held: bool) {
    if LEASE_HELD.swap(held, Ordering::Relaxed) != held {
        CHANGED.notify_one();
    }
    gauge!(super::LEASE_HELD).set(if held { 1.0 } else { 0.0 });
}

/// The last contact with the IMAP server. An established session counts as contact now: in
/// IDLE the server stays silent for up to `imap.idle_seconds`, and a dead session ends in an
/// error within that time (then the guard drops and the contact starts to age).
fn last_contact(now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if IMAP_CONNECTED.load(Ordering::Relaxed) {
        return Some(now);
    }
    match IMAP_CONTACT_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => DateTime::from_timestamp_millis(ms),
    }
}

/// This process's name in the `instances` table and in outbox claims.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

/// Writes the heartbeat every 15 s until stopped.
pub async fn heartbeat(store: Store, mut stop: watch::Receiver<bool>) {
    let name = instance_name();
    let started_at = Utc::now();
    loop {
        let now = Utc::now();
        let beat = InstanceBeat {
            name: name.clone(),
            version: crate::VERSION.to_owned(),
            started_at,
            now,
            lease_held: LEASE_HELD.load(Ordering::Relaxed),
            imap_connected: IMAP_CONNECTED.load(Ordering::Relaxed),
            imap_contact_at: last_contact(now),
            stopped: false,
        };
        if let Err(e) = store.beat(&beat).await {
            warn!(error = %e, "cannot write the instance heartbeat");
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = CHANGED.notified() => {}
            _ = stop.changed() => {
                // A last beat, so `status` sees this instance stopped rather than a stale "up".
                let now = Utc::now();
                let beat = InstanceBeat {
                    now,
                    lease_held: false,
                    imap_connected: false,
                    imap_contact_at: last_contact(now),
                    stopped: true,
                    ..beat
                };
                let _ = store.beat(&beat).await;
                return;
            }
        }
    }
}
