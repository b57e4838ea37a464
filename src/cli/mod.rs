//! The administrative commands: threads, report, stats, quarantine, audit, purge.
