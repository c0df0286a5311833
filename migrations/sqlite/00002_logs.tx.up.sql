-- The SQLite twin of postgres/00002_logs.
ALTER TABLE records ADD COLUMN owner_uid TEXT NOT NULL DEFAULT '';
CREATE INDEX records_owner ON records (owner_uid) WHERE owner_uid <> '';

CREATE TABLE log_chunks (
    record_uid TEXT NOT NULL REFERENCES records (uid) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (record_uid, seq)
);
