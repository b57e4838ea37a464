//! Prometheus metrics (DESIGN.md, *Operations*): the names, the recorder (the `metrics` facade
//! with its Prometheus exporter, which writes the text format `promtool` checks), the daemon's
//! own counters and gauges, and the database gauges computed at scrape time.
//!
//! The daemon records through the functions here (`daemon.rs` where a message's `Handled` comes
//! back, `outbox/` when a row is sent); without `[metrics] listen` no recorder is installed and
//! every call is a no-op. Labels hold closed sets only (outcomes, reason codes, states, kinds,
//! category ids): never an address, a subject or anything about a patient.

pub mod health;
pub mod server;

use std::time::Duration;

use chrono::Utc;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Settings;
use crate::intake::Outcome;
use crate::store::Store;

pub const INBOUND_TOTAL: &str = "teleavis_inbound_total";
pub const QUARANTINE_TOTAL: &str = "teleavis_quarantine_total";
pub const OUTBOX_MESSAGES: &str = "teleavis_outbox_messages";
pub const OUTBOX_OLDEST_PENDING: &str = "teleavis_outbox_oldest_pending_seconds";
pub const OUTBOX_SENT_TOTAL: &str = "teleavis_outbox_sent_total";
pub const THREADS: &str = "teleavis_threads";
pub const DEADLINE_OVERDUE: &str = "teleavis_deadline_overdue";
pub const INTAKE_DURATION: &str = "teleavis_intake_duration_seconds";
pub const IMAP_CONNECTED: &str = "teleavis_imap_connected";
pub const LEASE_HELD: &str = "teleavis_mailbox_lease_held";
pub const BUILD_INFO: &str = "teleavis_build_info";

/// Intake takes ~15 ms a message; a 25 MB request or a slow database takes seconds.
const INTAKE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const THREAD_STATUSES: [&str; 4] = ["nouvelle", "en_cours", "terminee", "annulee"];

/// Installs the process-wide recorder and describes every metric; call once, in `run`.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(INTAKE_DURATION.into()), INTAKE_BUCKETS)?
        .install_recorder()?;
    describe_counter!(INBOUND_TOTAL, "Messages read from the mailbox, by outcome.");
    describe_counter!(QUARANTINE_TOTAL, "Messages quarantined, by reason code.");
    describe_gauge!(OUTBOX_MESSAGES, "Outbox rows by state.");
    describe_gauge!(
        OUTBOX_OLDEST_PENDING,
        "Age in seconds of the oldest pending outbox row (0 when none)."
    );
    describe_counter!(OUTBOX_SENT_TOTAL, "Messages sent over SMTP, by kind.");
    describe_gauge!(THREADS, "Threads by status and category.");
    describe_gauge!(
        DEADLINE_OVERDUE,
        "Open threads past their deadline, by category."
    );
    describe_histogram!(
        INTAKE_DURATION,
        metrics::Unit::Seconds,
        "Time to handle one fetched message, up to its commit (before the MOVE)."
    );
    describe_gauge!(IMAP_CONNECTED, "1 while an IMAP session is established.");
    describe_gauge!(LEASE_HELD, "1 while this instance holds the mailbox lease.");
    describe_gauge!(BUILD_INFO, "Always 1; the labels name the build.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::GIT_COMMIT)
        .set(1.0);
    // Present from the first scrape, so a rate() over a fresh start is 0, not absent.
    for outcome in ["processed", "quarantined", "duplicate"] {
        counter!(INBOUND_TOTAL, "outcome" => outcome).absolute(0);
    }
    gauge!(IMAP_CONNECTED).set(0.0);
    gauge!(LEASE_HELD).set(0.0);
    Ok(handle)
}

/// One message handled: its outcome (and reason) and how long it took.
pub fn record_intake(outcome: &Outcome, elapsed: Duration) {
    let label = match outcome {
        Outcome::Processed { .. } => "processed",
        Outcome::Quarantined { reason } => {
            counter!(QUARANTINE_TOTAL, "reason" => reason.code()).increment(1);
            "quarantined"
        }
        Outcome::Duplicate { .. } => "duplicate",
    };
    counter!(INBOUND_TOTAL, "outcome" => label).increment(1);
    histogram!(INTAKE_DURATION).record(elapsed.as_secs_f64());
}

/// One outbox row accepted by the SMTP server.
pub fn outbox_sent(kind: &str) {
    counter!(OUTBOX_SENT_TOTAL, "kind" => kind.to_owned()).increment(1);
}

/// Refreshes the database gauges, then renders everything.
pub async fn render(handle: &PrometheusHandle, store: &Store, settings: &Settings) -> String {
    if let Err(e) = refresh_database_gauges(store, settings).await {
        // The daemon's own metrics are still worth serving; the stale gauges say nothing new.
        tracing::warn!(error = %e, "metrics: cannot read the database gauges");
    }
    handle.run_upkeep();
    handle.render()
}

async fn refresh_database_gauges(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let now = Utc::now();
    let snap = store.ops_snapshot().await?;
    for (state, n) in &snap.outbox {
        gauge!(OUTBOX_MESSAGES, "state" => state.clone()).set(*n as f64);
    }
    let age = snap
        .oldest_pending
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    gauge!(OUTBOX_OLDEST_PENDING).set(age);
    // Every configured (status, category) pair, so a count that falls to zero reads 0.
    let mut threads: Vec<(String, String, i64)> = Vec::new();
    for c in &settings.categories {
        for s in THREAD_STATUSES {
            threads.push((s.to_owned(), c.id.clone(), 0));
        }
    }
    for (s, c, n) in snap.threads {
        match threads.iter_mut().find(|(ts, tc, _)| *ts == s && *tc == c) {
            Some(slot) => slot.2 = n,
            None => threads.push((s, c, n)),
        }
    }
    for (s, c, n) in threads {
        gauge!(THREADS, "status" => s, "category" => c).set(n as f64);
    }
    let overdue = store.overdue_threads(now).await?;
    for c in &settings.categories {
        let n = overdue.iter().filter(|(oc, _)| *oc == c.id).count();
        gauge!(DEADLINE_OVERDUE, "category" => c.id.clone()).set(n as f64);
    }
    Ok(())
}
