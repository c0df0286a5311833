-- Flaky-task segments kept by the database, so that flakyTasks over a month
-- reads one row per task, revision and day instead of every TaskRun
-- (store/flaky_rollup.go).
--
-- A row of flaky_segments summarizes the finished TaskRuns (the predicate
-- of records_task_outcomes) of one namespace, Pipeline, task and revision
-- (the PipelineRun's, else the TaskRun's own) whose start falls on one UTC
-- day (days since 1970-01-01; -2147483648 without a start time), in the
-- order flakyTasks takes them (start time, then uid): how many, how many
-- succeeded and failed, the flips between consecutive runs inside the day,
-- the first and last outcome and the last start. Flips add up across days:
-- flips(A then B) = flips(A) + flips(B) + (last(A) <> first(B)).
CREATE TABLE flaky_segments (
    namespace     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    day           bigint NOT NULL,
    revision      text NOT NULL,
    n             bigint NOT NULL,
    succeeded     bigint NOT NULL,
    failed        bigint NOT NULL,
    flips         bigint NOT NULL,
    first_status  text NOT NULL,
    last_status   text NOT NULL,
    last_start    timestamptz,
    PRIMARY KEY (namespace, pipeline_name, task_name, day, revision)
);
CREATE INDEX flaky_segments_day ON flaky_segments (day);

-- A version per day of flaky_segments, changed by every fold that
-- recomputes a key of that day, in the fold's transaction: a server keeps
-- whole days of segments in memory while their version holds
-- (store/flaky_cache.go).
CREATE TABLE flaky_days (
    day     bigint PRIMARY KEY,
    version bigint NOT NULL
);

-- What writes may have changed, appended by statement triggers and taken
-- by the store's fold, which recomputes those segments from the Records;
-- until then a reader computes them from the Records itself. Keys of
-- TaskRuns that entered or left a (namespace, Pipeline, task, day), and
-- PipelineRuns whose revision appeared, changed or went: their TaskRuns
-- are looked up when the fold or a reader runs, not by the writer, whose
-- snapshot may miss TaskRuns written at the same time. No key is unique:
-- concurrent writers never wait for each other here.
CREATE TABLE flaky_dirty (
    namespace     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    day           bigint NOT NULL
);
CREATE TABLE flaky_dirty_runs (
    namespace  text NOT NULL,
    result_uid text NOT NULL,
    run_name   text NOT NULL
);

CREATE FUNCTION annals_flaky_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day)
    SELECT DISTINCT namespace, pipeline_name, task_name, COALESCE(CAST(floor(EXTRACT(EPOCH FROM start_time) / 86400) AS bigint), -2147483648)
    FROM new_rows WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND task_name <> '';
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name)
    SELECT DISTINCT namespace, result_uid, run_name FROM new_rows
    WHERE data_type LIKE 'tekton.dev/%.PipelineRun' AND revision <> '' AND run_name <> '';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION annals_flaky_delete() RETURNS trigger AS $$
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day)
    SELECT DISTINCT namespace, pipeline_name, task_name, COALESCE(CAST(floor(EXTRACT(EPOCH FROM start_time) / 86400) AS bigint), -2147483648)
    FROM old_rows WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND task_name <> '';
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name)
    SELECT DISTINCT namespace, result_uid, run_name FROM old_rows
    WHERE data_type LIKE 'tekton.dev/%.PipelineRun' AND revision <> '' AND run_name <> '';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- An update marks the old and the new key of a TaskRun when a column the
-- segments use changed (a run that finishes, moves or changes revision),
-- and a PipelineRun's run when its revision or what finds its TaskRuns
-- changed; a status change of a PipelineRun marks nothing.
CREATE FUNCTION annals_flaky_update() RETURNS trigger AS $$
BEGIN
    INSERT INTO flaky_dirty (namespace, pipeline_name, task_name, day)
    SELECT DISTINCT x.namespace, x.pipeline_name, x.task_name, COALESCE(CAST(floor(EXTRACT(EPOCH FROM x.start_time) / 86400) AS bigint), -2147483648)
    FROM old_rows AS o JOIN new_rows AS n USING (uid),
        LATERAL (VALUES (o.namespace, o.data_type, o.status, o.pipeline_name, o.task_name, o.start_time),
                        (n.namespace, n.data_type, n.status, n.pipeline_name, n.task_name, n.start_time))
            AS x (namespace, data_type, status, pipeline_name, task_name, start_time)
    WHERE (o.namespace, o.data_type, o.status, o.pipeline_name, o.task_name, o.start_time, o.revision, o.result_uid, o.pipeline_run_name)
        IS DISTINCT FROM (n.namespace, n.data_type, n.status, n.pipeline_name, n.task_name, n.start_time, n.revision, n.result_uid, n.pipeline_run_name)
      AND x.data_type LIKE 'tekton.dev/%.TaskRun' AND x.status IN ('Succeeded', 'Failed') AND x.pipeline_name <> '' AND x.task_name <> '';
    INSERT INTO flaky_dirty_runs (namespace, result_uid, run_name)
    SELECT DISTINCT x.namespace, x.result_uid, x.run_name
    FROM old_rows AS o JOIN new_rows AS n USING (uid),
        LATERAL (VALUES (o.namespace, o.data_type, o.revision, o.result_uid, o.run_name),
                        (n.namespace, n.data_type, n.revision, n.result_uid, n.run_name))
            AS x (namespace, data_type, revision, result_uid, run_name)
    WHERE (o.namespace, o.data_type, o.revision, o.result_uid, o.run_name)
        IS DISTINCT FROM (n.namespace, n.data_type, n.revision, n.result_uid, n.run_name)
      AND x.data_type LIKE 'tekton.dev/%.PipelineRun' AND x.revision <> '' AND x.run_name <> '';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_flaky_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_flaky_insert();
CREATE TRIGGER records_flaky_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_flaky_delete();
CREATE TRIGGER records_flaky_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_flaky_update();

-- Backfill: the statement the fold runs for dirty keys, over every Record.
INSERT INTO flaky_segments (namespace, pipeline_name, task_name, day, revision, n, succeeded, failed, flips, first_status, last_status, last_start)
WITH parents AS (
    SELECT pr.namespace, pr.result_uid, pr.run_name, MAX(pr.revision COLLATE "C") AS revision FROM records AS pr
    WHERE pr.revision <> '' AND pr.data_type LIKE 'tekton.dev/%.PipelineRun'
    GROUP BY pr.namespace, pr.result_uid, pr.run_name
), seg_runs AS (
    SELECT t.uid, t.namespace, t.pipeline_name, t.task_name, t.status, t.start_time,
        COALESCE(CAST(floor(EXTRACT(EPOCH FROM t.start_time) / 86400) AS bigint), -2147483648) AS day,
        COALESCE(pa.revision, NULLIF(t.revision, '')) AS rev
    FROM records AS t LEFT JOIN parents AS pa
        ON pa.namespace = t.namespace AND pa.result_uid = t.result_uid AND pa.run_name = t.pipeline_run_name AND t.pipeline_run_name <> ''
    WHERE t.data_type LIKE 'tekton.dev/%.TaskRun' AND t.status IN ('Succeeded', 'Failed') AND t.pipeline_name <> '' AND t.task_name <> ''
), seg_ordered AS (
    SELECT namespace, pipeline_name, task_name, status, start_time, day, rev,
        LAG(status) OVER w AS prev, LEAD(status) OVER w AS next
    FROM seg_runs WHERE rev IS NOT NULL
    WINDOW w AS (PARTITION BY namespace, pipeline_name, task_name, rev, day
                 ORDER BY CASE WHEN start_time IS NULL THEN 0 ELSE 1 END, start_time, uid COLLATE "C")
)
SELECT namespace, pipeline_name, task_name, day, rev, COUNT(*),
    COUNT(CASE WHEN status = 'Succeeded' THEN 1 END), COUNT(CASE WHEN status = 'Failed' THEN 1 END),
    COUNT(CASE WHEN prev <> status THEN 1 END),
    MAX(CASE WHEN prev IS NULL THEN status END), MAX(CASE WHEN next IS NULL THEN status END), MAX(start_time)
FROM seg_ordered GROUP BY namespace, pipeline_name, task_name, rev, day;

INSERT INTO flaky_days (day, version) SELECT DISTINCT day, 1 FROM flaky_segments;
