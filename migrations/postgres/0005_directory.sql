-- The national MSSanté directory (issue 10): one row per mailbox, replaced atomically by
-- `teleavis directory import`. Addresses are kept lowercase (the key is case-insensitive).
CREATE TABLE directory_entries (
    address         TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,          -- PER (a person) or ORG (an organisation)
    rpps            TEXT,                   -- Identifiant PP: the 11-digit RPPS number
    civility        TEXT,
    last_name       TEXT,
    first_name      TEXT,
    profession_code TEXT,
    profession      TEXT,                   -- Libellé Profession (Médecin, Sage-Femme…)
    specialty_code  TEXT,
    specialty       TEXT,                   -- Libellé savoir-faire
    organization    TEXT,
    postal_code     TEXT,
    department      TEXT
);
CREATE INDEX directory_entries_rpps ON directory_entries (rpps);

-- The import that produced the current directory: what `directory.file` is compared with.
CREATE TABLE directory_imports (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT NOT NULL,
    file_size   BIGINT NOT NULL,
    file_mtime  TEXT NOT NULL,
    lines       BIGINT NOT NULL,
    entries     BIGINT NOT NULL,
    imported_at TEXT NOT NULL
);

-- The on-duty roster (issue 10): one row per duty slot, times in UTC (store format). An
-- import replaces the slots of the categories its file names.
CREATE TABLE roster_slots (
    category  TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at   TEXT NOT NULL,
    expert    TEXT NOT NULL          -- lowercase address
);
CREATE INDEX roster_slots_category ON roster_slots (category, starts_at);

-- The desk's deadline of each thread (issue 10): set when the thread opens, stopped by an
-- expert's answer, #prendre, #clore or #annuler. reminded_at / escalated_at are for the
-- reminders at the deadline and at twice the deadline.
CREATE TABLE thread_deadlines (
    thread_id    TEXT PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    urgent       INTEGER NOT NULL,
    opened_at    TEXT NOT NULL,
    deadline_at  TEXT NOT NULL,
    stopped_at   TEXT,
    reminded_at  TEXT,
    escalated_at TEXT
);
CREATE INDEX thread_deadlines_due ON thread_deadlines (deadline_at);
