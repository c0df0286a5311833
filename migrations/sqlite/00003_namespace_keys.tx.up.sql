-- The SQLite twin of postgres/00003_namespace_keys: keys and links carry the
-- namespace. SQLite cannot change a primary or foreign key in place, so each
-- table is rebuilt: new tables are created, filled from the old ones, the
-- old ones dropped children first (so that no cascade reaches a row still
-- needed) and the new ones renamed, which also renames the references.

CREATE TABLE results_new (
    uid                 TEXT NOT NULL,
    namespace           TEXT NOT NULL,
    name                TEXT NOT NULL UNIQUE,
    summary_record      TEXT NOT NULL DEFAULT '',
    summary_type        TEXT NOT NULL DEFAULT '',
    summary_status      TEXT NOT NULL DEFAULT 'Unknown',
    summary_start_time  TIMESTAMP,
    summary_end_time    TIMESTAMP,
    summary_annotations TEXT,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    version             INTEGER NOT NULL,
    PRIMARY KEY (namespace, uid)
);
INSERT INTO results_new (uid, namespace, name, summary_record, summary_type, summary_status, summary_start_time,
    summary_end_time, summary_annotations, created_at, updated_at, version)
SELECT uid, namespace, name, summary_record, summary_type, summary_status, summary_start_time,
    summary_end_time, summary_annotations, created_at, updated_at, version FROM results;

-- Records attached to a Result of another namespace (written before this
-- migration) keep their names, which say their own namespace: their Result
-- becomes a Result of that namespace, as a new write would create it.
INSERT INTO results_new (uid, namespace, name, summary_record, summary_type, summary_status, created_at, updated_at, version)
SELECT r.result_uid, r.namespace, min(r.result_name), '', '', 'Unknown', min(r.created_at), max(r.updated_at), 1
FROM records AS r
WHERE NOT EXISTS (SELECT 1 FROM results_new AS res WHERE res.uid = r.result_uid AND res.namespace = r.namespace)
GROUP BY r.namespace, r.result_uid;

CREATE TABLE result_annotations_new (
    namespace  TEXT NOT NULL,
    result_uid TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (namespace, result_uid, key),
    FOREIGN KEY (namespace, result_uid) REFERENCES results_new (namespace, uid) ON DELETE CASCADE
);
INSERT INTO result_annotations_new (namespace, result_uid, key, value)
SELECT res.namespace, a.result_uid, a.key, a.value FROM result_annotations AS a JOIN results AS res ON res.uid = a.result_uid;

CREATE TABLE records_new (
    uid               TEXT NOT NULL,
    result_uid        TEXT NOT NULL,
    namespace         TEXT NOT NULL,
    name              TEXT NOT NULL UNIQUE,
    result_name       TEXT NOT NULL,
    data_type         TEXT NOT NULL,
    data              TEXT,
    run_name          TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'Unknown',
    reason            TEXT NOT NULL DEFAULT '',
    pipeline_run_name TEXT NOT NULL DEFAULT '',
    pipeline_name     TEXT NOT NULL DEFAULT '',
    task_name         TEXT NOT NULL DEFAULT '',
    labels            TEXT,
    start_time        TIMESTAMP,
    completion_time   TIMESTAMP,
    duration_ms       INTEGER,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    version           INTEGER NOT NULL,
    owner_uid         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, uid),
    FOREIGN KEY (namespace, result_uid) REFERENCES results_new (namespace, uid) ON DELETE CASCADE
);
INSERT INTO records_new (uid, result_uid, namespace, name, result_name, data_type, data, run_name, status, reason,
    pipeline_run_name, pipeline_name, task_name, labels, start_time, completion_time, duration_ms, created_at,
    updated_at, version, owner_uid)
SELECT uid, result_uid, namespace, name, result_name, data_type, data, run_name, status, reason,
    pipeline_run_name, pipeline_name, task_name, labels, start_time, completion_time, duration_ms, created_at,
    updated_at, version, owner_uid FROM records;

CREATE TABLE log_chunks_new (
    namespace  TEXT NOT NULL,
    record_uid TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (namespace, record_uid, seq),
    FOREIGN KEY (namespace, record_uid) REFERENCES records_new (namespace, uid) ON DELETE CASCADE
);
INSERT INTO log_chunks_new (namespace, record_uid, seq, data)
SELECT r.namespace, c.record_uid, c.seq, c.data FROM log_chunks AS c JOIN records AS r ON r.uid = c.record_uid;

CREATE TABLE legacy_log_files (
    namespace TEXT NOT NULL,
    uid       TEXT NOT NULL,
    PRIMARY KEY (namespace, uid),
    FOREIGN KEY (namespace, uid) REFERENCES records_new (namespace, uid) ON DELETE CASCADE
);
INSERT INTO legacy_log_files (namespace, uid)
SELECT namespace, uid FROM records
WHERE data_type = 'results.tekton.dev/v1alpha3.Log' AND json_extract(data, '$.status.storage') = 'file';

DROP TABLE log_chunks;
DROP TABLE records;
DROP TABLE result_annotations;
DROP TABLE results;
ALTER TABLE results_new RENAME TO results;
ALTER TABLE result_annotations_new RENAME TO result_annotations;
ALTER TABLE records_new RENAME TO records;
ALTER TABLE log_chunks_new RENAME TO log_chunks;

CREATE INDEX results_namespace_created ON results (namespace, created_at, uid);
CREATE INDEX results_created ON results (created_at, uid);
CREATE INDEX results_updated ON results (updated_at, uid);
CREATE INDEX results_summary_status ON results (summary_status, created_at);
CREATE INDEX result_annotations_key_value ON result_annotations (key, value);
CREATE INDEX records_result ON records (namespace, result_uid, created_at, uid);
CREATE INDEX records_namespace_type_created ON records (namespace, data_type, created_at, uid);
CREATE INDEX records_type_created ON records (data_type, created_at, uid);
CREATE INDEX records_created ON records (created_at, uid);
CREATE INDEX records_updated ON records (updated_at, uid);
CREATE INDEX records_start ON records (start_time, uid);
CREATE INDEX records_completion ON records (completion_time, uid);
CREATE INDEX records_duration ON records (duration_ms, uid);
CREATE INDEX records_status ON records (status, created_at);
CREATE INDEX records_pipeline_run ON records (namespace, result_uid, pipeline_run_name) WHERE pipeline_run_name <> '';
CREATE INDEX records_pipeline_name ON records (pipeline_name, created_at) WHERE pipeline_name <> '';
CREATE INDEX records_task_name ON records (task_name, created_at) WHERE task_name <> '';
CREATE INDEX records_owner ON records (namespace, owner_uid) WHERE owner_uid <> '';
CREATE INDEX legacy_log_files_uid ON legacy_log_files (uid);
