-- Logs: a Log Record (results.tekton.dev/v1alpha3.Log) describes one step's
-- log; its bytes live in chunks. owner_uid links a Record to the Record it is
-- about (a Log to its TaskRun).
ALTER TABLE records ADD COLUMN owner_uid text NOT NULL DEFAULT '';
CREATE INDEX records_owner ON records (owner_uid) WHERE owner_uid <> '';

CREATE TABLE log_chunks (
    record_uid text NOT NULL REFERENCES records (uid) ON DELETE CASCADE,
    seq        integer NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (record_uid, seq)
);
