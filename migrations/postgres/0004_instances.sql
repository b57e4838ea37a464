-- Operations (issue 9): one row per running `teleavis run` process, refreshed every 15 s, so
-- that `teleavis status` (another process) can tell who holds the mailbox lease and when the
-- IMAP server last answered. Rows of processes silent for a day are removed by the heartbeat.
CREATE TABLE instances (
    name            TEXT PRIMARY KEY,        -- host:pid
    version         TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL,
    lease_held      BIGINT NOT NULL DEFAULT 0,
    imap_connected  BIGINT NOT NULL DEFAULT 0,
    imap_contact_at TEXT,                    -- NULL: never reached the IMAP server
    stopped_at      TEXT                     -- set by a clean shutdown
);
CREATE INDEX audit_subject ON audit (subject, id);
