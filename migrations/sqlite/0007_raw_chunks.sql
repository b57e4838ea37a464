-- Raw mail moves out of the rows that change (store/blobs.rs): SQLite rewrites a whole record,
-- overflow pages included, on every UPDATE, so each outcome, claim or send rewrote the message.
-- The bytes now sit in chunks (1 MiB, seq from 0) written once; an empty message has none, and
-- retention deletes them. Existing messages move over as one chunk each (readers take any size).
CREATE TABLE inbound_raw (
    inbound_id  INTEGER NOT NULL REFERENCES inbound (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    PRIMARY KEY (inbound_id, seq)
);
INSERT INTO inbound_raw (inbound_id, seq, bytes) SELECT id, 0, raw FROM inbound WHERE length(raw) > 0;
ALTER TABLE inbound DROP COLUMN raw;

CREATE TABLE outbox_raw (
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    PRIMARY KEY (outbox_id, seq)
);
INSERT INTO outbox_raw (outbox_id, seq, bytes) SELECT id, 0, raw FROM outbox WHERE length(raw) > 0;
ALTER TABLE outbox DROP COLUMN raw;
