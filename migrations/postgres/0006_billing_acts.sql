-- Billing: the acts of each closed thread (TE2 for the expert, RQD for the requérant), with
-- the price of the day and whether they are billable. Kept when a thread is purged: the billing
-- office's record has its own retention. patient_key is what the yearly cap counts by (INS,
-- else birth name + first names + birth date); patient_json the identity the export shows.
CREATE TABLE acts (
    id            BIGSERIAL PRIMARY KEY,
    thread_id     TEXT NOT NULL,
    code          TEXT NOT NULL,               -- TE2 | RQD
    doctor_rpps   TEXT,
    doctor_name   TEXT NOT NULL,
    patient_key   TEXT NOT NULL,
    patient_json  TEXT NOT NULL,
    act_day       TEXT NOT NULL,               -- YYYY-MM-DD in the gateway's zone
    act_year      BIGINT NOT NULL,
    amount_cents  BIGINT NOT NULL,
    billable      BIGINT NOT NULL,            -- 0 | 1
    reason        TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (thread_id, code)
);
CREATE INDEX acts_cap ON acts (doctor_rpps, patient_key, act_year);
CREATE INDEX acts_day ON acts (act_day);
