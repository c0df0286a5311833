-- Results group the Records of one run tree; the summary columns follow the
-- run that gives the Result its identity.
CREATE TABLE results (
    uid                 text PRIMARY KEY,
    namespace           text NOT NULL,
    name                text NOT NULL UNIQUE,
    summary_record      text NOT NULL DEFAULT '',
    summary_type        text NOT NULL DEFAULT '',
    summary_status      text NOT NULL DEFAULT 'Unknown',
    summary_start_time  timestamptz,
    summary_end_time    timestamptz,
    summary_annotations jsonb,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    version             bigint NOT NULL
);
CREATE INDEX results_namespace_created ON results (namespace, created_at, uid);
CREATE INDEX results_created ON results (created_at, uid);
CREATE INDEX results_updated ON results (updated_at, uid);
CREATE INDEX results_summary_status ON results (summary_status, created_at);

CREATE TABLE result_annotations (
    result_uid text NOT NULL REFERENCES results (uid) ON DELETE CASCADE,
    key        text NOT NULL,
    value      text NOT NULL,
    PRIMARY KEY (result_uid, key)
);
CREATE INDEX result_annotations_key_value ON result_annotations (key, value);

-- Records hold whole objects; the columns after data are extracted from it on
-- every write so that filters and orderings use indexes, not JSON.
CREATE TABLE records (
    uid               text PRIMARY KEY,
    result_uid        text NOT NULL REFERENCES results (uid) ON DELETE CASCADE,
    namespace         text NOT NULL,
    name              text NOT NULL UNIQUE,
    result_name       text NOT NULL,
    data_type         text NOT NULL,
    data              jsonb,
    run_name          text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'Unknown',
    reason            text NOT NULL DEFAULT '',
    pipeline_run_name text NOT NULL DEFAULT '',
    pipeline_name     text NOT NULL DEFAULT '',
    task_name         text NOT NULL DEFAULT '',
    labels            jsonb,
    start_time        timestamptz,
    completion_time   timestamptz,
    duration_ms       bigint,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint NOT NULL
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
CREATE INDEX records_labels ON records USING gin (labels jsonb_path_ops);

-- Settings of the installation shared by every replica, such as the key that
-- seals pagination cursors.
CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO settings (key, value) VALUES ('cursor_key', encode(sha256(gen_random_uuid()::text::bytea || clock_timestamp()::text::bytea), 'hex'));
