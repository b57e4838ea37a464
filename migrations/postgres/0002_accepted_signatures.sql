-- Replay protection (issue 7): the digest of the author's signature of every message handled.
-- A message whose signature is already here is a duplicate of the first. Kept by purge: a
-- digest holds no patient data, and a replay after retention must still be recognised.
CREATE TABLE accepted_signatures (
    id           BIGSERIAL PRIMARY KEY,
    -- SHA-256 (hex) of the signer certificate and the signature value
    digest       TEXT    NOT NULL,
    inbound_id   BIGINT  NOT NULL,
    thread_id    TEXT,
    signer       TEXT    NOT NULL,
    accepted_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX accepted_signatures_digest ON accepted_signatures (digest);
