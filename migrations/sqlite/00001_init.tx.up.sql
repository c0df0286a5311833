-- The SQLite twin of postgres/00001_init: JSON is TEXT, times are TEXT in
-- UTC (bun's format) so that they sort as text.
CREATE TABLE results (
    uid                 TEXT PRIMARY KEY,
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
    version             INTEGER NOT NULL
);
CREATE INDEX results_namespace_created ON results (namespace, created_at, uid);
CREATE INDEX results_created ON results (created_at, uid);
CREATE INDEX results_updated ON results (updated_at, uid);
CREATE INDEX results_summary_status ON results (summary_status, created_at);

CREATE TABLE result_annotations (
    result_uid TEXT NOT NULL REFERENCES results (uid) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (result_uid, key)
);
CREATE INDEX result_annotations_key_value ON result_annotations (key, value);

CREATE TABLE records (
    uid               TEXT PRIMARY KEY,
    result_uid        TEXT NOT NULL REFERENCES results (uid) ON DELETE CASCADE,
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
    version           INTEGER NOT NULL
);
CREATE INDEX records_result ON records (result_uid, created_at, uid);
CREATE INDEX records_namespace_type_created ON records (namespace, data_type, created_at, uid);
CREATE INDEX records_type_created ON records (data_type, created_at, uid);
CREATE INDEX records_created ON records (created_at, uid);
CREATE INDEX records_updated ON records (updated_at, uid);
CREATE INDEX records_start ON records (start_time, uid);
CREATE INDEX records_completion ON records (completion_time, uid);
CREATE INDEX records_duration ON records (duration_ms, uid);
CREATE INDEX records_status ON records (status, created_at);
CREATE INDEX records_pipeline_run ON records (result_uid, pipeline_run_name) WHERE pipeline_run_name <> '';
CREATE INDEX records_pipeline_name ON records (pipeline_name, created_at) WHERE pipeline_name <> '';
CREATE INDEX records_task_name ON records (task_name, created_at) WHERE task_name <> '';

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO settings (key, value) VALUES ('cursor_key', lower(hex(randomblob(32))));
