//! Database access through sqlx Any (SQLite or PostgreSQL): inbound, threads, outbox, audit.
