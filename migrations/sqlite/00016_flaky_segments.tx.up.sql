-- Flaky-task segments; see the PostgreSQL migration of the same number.
-- SQLite has only row triggers: each write marks the key of the TaskRun it
-- changes, old and new, or the run of the PipelineRun whose revision it
-- changes. Times are TEXT in bun's UTC layout, days computed as in 00013. A
-- migration that rebuilds records must create these triggers again.
CREATE TABLE flaky_segments (
    namespace     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    day           INTEGER NOT NULL,
    revision      TEXT NOT NULL,
    n             INTEGER NOT NULL,
    succeeded     INTEGER NOT NULL,
    failed        INTEGER NOT NULL,
    flips         INTEGER NOT NULL,
    first_status  TEXT NOT NULL,
    last_status   TEXT NOT NULL,
    last_start    TIMESTAMP,
    PRIMARY KEY (namespace, pipeline_name, task_name, day, revision)
);
CREATE INDEX flaky_segments_day ON flaky_segments (day);

-- A version per day of flaky_segments, changed by every fold that
-- recomputes a key of that day, in the fold's transaction: a server keeps
-- whole days of segments in memory while their version holds
-- (store/flaky_cache.go).
CREATE TABLE flaky_days (
    day     INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);

CREATE TABLE flaky_dirty (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    day           INTEGER NOT NULL
);
CREATE TABLE flaky_dirty_runs (
    id         INTEGER PRIMARY KEY,
    namespace  TEXT NOT NULL,
    result_uid TEXT NOT NULL,
    run_name   TEXT NOT NULL
);

CREATE TRIGGER records_flaky_task_insert AFTER INSERT ON records
WHEN new.data_type LIKE 'tekton.dev/%.TaskRun' AND new.status IN ('Succeeded', 'Failed') AND new.pipeline_name <> '' AND new.task_name <> ''
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day) SELECT new.namespace, new.pipeline_name, new.task_name, COALESCE(CAST(floor(CAST(strftime('%s', new.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648);
END;

CREATE TRIGGER records_flaky_run_insert AFTER INSERT ON records
WHEN new.data_type LIKE 'tekton.dev/%.PipelineRun' AND new.revision <> '' AND new.run_name <> ''
BEGIN
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name) SELECT new.namespace, new.result_uid, new.run_name;
END;

CREATE TRIGGER records_flaky_task_delete AFTER DELETE ON records
WHEN old.data_type LIKE 'tekton.dev/%.TaskRun' AND old.status IN ('Succeeded', 'Failed') AND old.pipeline_name <> '' AND old.task_name <> ''
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day) SELECT old.namespace, old.pipeline_name, old.task_name, COALESCE(CAST(floor(CAST(strftime('%s', old.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648);
END;

CREATE TRIGGER records_flaky_run_delete AFTER DELETE ON records
WHEN old.data_type LIKE 'tekton.dev/%.PipelineRun' AND old.revision <> '' AND old.run_name <> ''
BEGIN
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name) SELECT old.namespace, old.result_uid, old.run_name;
END;

CREATE TRIGGER records_flaky_task_update AFTER UPDATE ON records
WHEN (old.namespace IS NOT new.namespace OR old.data_type IS NOT new.data_type OR old.status IS NOT new.status OR old.pipeline_name IS NOT new.pipeline_name OR old.task_name IS NOT new.task_name OR old.start_time IS NOT new.start_time OR old.revision IS NOT new.revision OR old.result_uid IS NOT new.result_uid OR old.pipeline_run_name IS NOT new.pipeline_run_name)
    AND ((old.data_type LIKE 'tekton.dev/%.TaskRun' AND old.status IN ('Succeeded', 'Failed') AND old.pipeline_name <> '' AND old.task_name <> '') OR (new.data_type LIKE 'tekton.dev/%.TaskRun' AND new.status IN ('Succeeded', 'Failed') AND new.pipeline_name <> '' AND new.task_name <> ''))
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day) SELECT old.namespace, old.pipeline_name, old.task_name, COALESCE(CAST(floor(CAST(strftime('%s', old.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648) WHERE old.data_type LIKE 'tekton.dev/%.TaskRun' AND old.status IN ('Succeeded', 'Failed') AND old.pipeline_name <> '' AND old.task_name <> '';
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day) SELECT new.namespace, new.pipeline_name, new.task_name, COALESCE(CAST(floor(CAST(strftime('%s', new.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648) WHERE new.data_type LIKE 'tekton.dev/%.TaskRun' AND new.status IN ('Succeeded', 'Failed') AND new.pipeline_name <> '' AND new.task_name <> '';
END;

CREATE TRIGGER records_flaky_run_update AFTER UPDATE ON records
WHEN (old.namespace IS NOT new.namespace OR old.data_type IS NOT new.data_type OR old.revision IS NOT new.revision OR old.result_uid IS NOT new.result_uid OR old.run_name IS NOT new.run_name)
    AND ((old.data_type LIKE 'tekton.dev/%.PipelineRun' AND old.revision <> '' AND old.run_name <> '') OR (new.data_type LIKE 'tekton.dev/%.PipelineRun' AND new.revision <> '' AND new.run_name <> ''))
BEGIN
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name) SELECT old.namespace, old.result_uid, old.run_name WHERE old.data_type LIKE 'tekton.dev/%.PipelineRun' AND old.revision <> '' AND old.run_name <> '';
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name) SELECT new.namespace, new.result_uid, new.run_name WHERE new.data_type LIKE 'tekton.dev/%.PipelineRun' AND new.revision <> '' AND new.run_name <> '';
END;

-- Backfill: the statement the fold runs for dirty keys, over every Record.
INSERT INTO flaky_segments (namespace, pipeline_name, task_name, day, revision, n, succeeded, failed, flips, first_status, last_status, last_start)
WITH parents AS (
    SELECT pr.namespace, pr.result_uid, pr.run_name, MAX(pr.revision) AS revision FROM records AS pr
    WHERE pr.revision <> '' AND pr.data_type LIKE 'tekton.dev/%.PipelineRun'
    GROUP BY pr.namespace, pr.result_uid, pr.run_name
), seg_runs AS (
    SELECT t.uid, t.namespace, t.pipeline_name, t.task_name, t.status, t.start_time,
        COALESCE(CAST(floor(CAST(strftime('%s', t.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648) AS day,
        COALESCE(pa.revision, NULLIF(t.revision, '')) AS rev
    FROM records AS t LEFT JOIN parents AS pa
        ON pa.namespace = t.namespace AND pa.result_uid = t.result_uid AND pa.run_name = t.pipeline_run_name AND t.pipeline_run_name <> ''
    WHERE t.data_type LIKE 'tekton.dev/%.TaskRun' AND t.status IN ('Succeeded', 'Failed') AND t.pipeline_name <> '' AND t.task_name <> ''
), seg_ordered AS (
    SELECT namespace, pipeline_name, task_name, status, start_time, day, rev,
        LAG(status) OVER w AS prev, LEAD(status) OVER w AS next
    FROM seg_runs WHERE rev IS NOT NULL
    WINDOW w AS (PARTITION BY namespace, pipeline_name, task_name, rev, day
                 ORDER BY CASE WHEN start_time IS NULL THEN 0 ELSE 1 END, start_time, uid)
)
SELECT namespace, pipeline_name, task_name, day, rev, COUNT(*),
    COUNT(CASE WHEN status = 'Succeeded' THEN 1 END), COUNT(CASE WHEN status = 'Failed' THEN 1 END),
    COUNT(CASE WHEN prev <> status THEN 1 END),
    MAX(CASE WHEN prev IS NULL THEN status END), MAX(CASE WHEN next IS NULL THEN status END), MAX(start_time)
FROM seg_ordered GROUP BY namespace, pipeline_name, task_name, rev, day;

INSERT INTO flaky_days (day, version) SELECT DISTINCT day, 1 FROM flaky_segments;
