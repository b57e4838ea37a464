-- teleavis schema (SQLite). Timestamps are RFC 3339 UTC text with milliseconds
-- ("2026-11-27T13:46:33.123Z"), so they sort as text on both backends.

-- Every message fetched from IMAP, as received. Never updated but for its outcome.
CREATE TABLE inbound (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   TEXT    NOT NULL,
    mailbox       TEXT    NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    message_id    TEXT,
    sha256        TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    from_addr     TEXT,
    raw           BLOB    NOT NULL,
    -- stored | processed | quarantined | duplicate | reprocessed
    outcome       TEXT    NOT NULL,
    -- closed set of reason codes when quarantined
    reason        TEXT,
    detail        TEXT,
    thread_id     TEXT,
    -- IMAP folder the message was (or must be) moved to; NULL while unknown
    destination   TEXT,
    moved_at      TEXT,
    -- retention: raw bytes wiped (the row stays as a dedupe tombstone)
    purged_at     TEXT
);
CREATE UNIQUE INDEX inbound_sha256 ON inbound (sha256);
CREATE INDEX inbound_message_id ON inbound (message_id);
CREATE INDEX inbound_outcome ON inbound (outcome);
CREATE INDEX inbound_thread ON inbound (thread_id);
-- committed but not yet moved out of INBOX (crash recovery)
CREATE INDEX inbound_unmoved ON inbound (id) WHERE destination IS NOT NULL AND moved_at IS NULL;

CREATE TABLE thread_counters (
    year  INTEGER PRIMARY KEY,
    last  INTEGER NOT NULL
);

CREATE TABLE threads (
    id              TEXT PRIMARY KEY,          -- TE-2026-000042
    status          TEXT NOT NULL,             -- nouvelle | en_cours | terminee | annulee
    category        TEXT NOT NULL,
    requester       TEXT NOT NULL,
    requester_name  TEXT,
    requester_rpps  TEXT,
    taken_by        TEXT,
    form_json       TEXT NOT NULL,             -- the parsed request form (patient data)
    previous_thread TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    closed_at       TEXT
);
CREATE INDEX threads_status ON threads (status);
CREATE INDEX threads_updated ON threads (updated_at);
CREATE INDEX threads_created ON threads (created_at);

-- Every message of a thread, in or out, for threads show and the compte-rendu.
CREATE TABLE thread_messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id    TEXT NOT NULL REFERENCES threads (id),
    direction    TEXT NOT NULL,                -- in | out
    kind         TEXT NOT NULL,                -- request | ack | forward | answer | follow_up | command | report | notice
    from_addr    TEXT NOT NULL,
    to_addrs     TEXT NOT NULL,                -- comma separated
    at           TEXT NOT NULL,
    message_id   TEXT,
    author_name  TEXT,
    author_rpps  TEXT,
    body_text    TEXT,
    attachments_json TEXT NOT NULL DEFAULT '[]', -- [{name, content_type, size, sha256}]
    inbound_id   INTEGER REFERENCES inbound (id),
    outbox_id    INTEGER
);
CREATE INDEX thread_messages_thread ON thread_messages (thread_id, id);
CREATE INDEX thread_messages_message_id ON thread_messages (message_id);

-- The send queue. `raw` is the cleartext RFC 5322 message; it is signed and encrypted when sent.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    message_id      TEXT,                      -- set right after insert, derived from id
    thread_id       TEXT,
    kind            TEXT NOT NULL,
    envelope_from   TEXT NOT NULL,
    recipients      TEXT NOT NULL,             -- comma separated
    raw             BLOB NOT NULL,
    -- pending | held | sent | failed
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_until   TEXT,
    claimed_by      TEXT,
    last_error      TEXT,
    sent_at         TEXT,
    failed_at       TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE UNIQUE INDEX outbox_message_id ON outbox (message_id);
CREATE INDEX outbox_thread ON outbox (thread_id);

-- Recipient certificates learned from verified signatures.
CREATE TABLE recipient_certs (
    address     TEXT PRIMARY KEY,
    cert_der    BLOB NOT NULL,
    not_after   TEXT NOT NULL,
    learned_at  TEXT NOT NULL,
    inbound_id  INTEGER
);

-- Automatic replies sent, for the per-sender rate limit.
CREATE TABLE auto_replies (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    address  TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX auto_replies_address ON auto_replies (address, at);

-- Append-only, hash-chained audit trail.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
-- A row's predecessor is unique: the chain cannot fork, even under a faulty appender.
CREATE UNIQUE INDEX audit_prev_hash ON audit (prev_hash);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
