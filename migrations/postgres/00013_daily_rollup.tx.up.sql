-- Record counts for all namespaces together (record_rollup without its
-- namespace column), kept by the same fold: a facet of a caller who reads
-- every namespace adds up a tenth of the rows at ten namespaces.
CREATE TABLE record_rollup_all (
    data_type     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (data_type, pipeline_name, task_name, status, reason)
);
INSERT INTO record_rollup_all
SELECT data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup GROUP BY 1, 2, 3, 4, 5;

-- Run statistics per UTC day of the start time, kept by the database so that
-- recordStats over a month reads one row per key and day instead of every
-- run (store/rollup_daily.go).
--
-- A row of record_daily is the Records of one key (the columns of
-- record_rollup) whose start time falls on one UTC day: day is the number of
-- days since 1970-01-01, or -2147483648 for Records without a start time.
-- Besides counts and the minimum, maximum and sum of the duration and the
-- queue time (start - metadata.creationTimestamp), it keeps every value of
-- them and every start time, sorted, as 8-byte big-endian integers
-- (microseconds) packed in a bytea: percentiles stay exact, and a deleted or
-- rewritten run is taken out exactly.
--
-- As for record_rollup, writers never touch record_daily: statement triggers
-- append one signed row per changed Record to record_daily_deltas, and the
-- store folds them in. A reader reads both tables in one statement.
CREATE TABLE record_daily (
    data_type     text NOT NULL,
    day           bigint NOT NULL,
    namespace     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    n             bigint NOT NULL,
    last_start    bigint,
    dur_n         bigint NOT NULL,
    dur_min       bigint,
    dur_max       bigint,
    dur_sum       bigint NOT NULL,
    durs          bytea NOT NULL,
    queue_n       bigint NOT NULL,
    queue_min     bigint,
    queue_max     bigint,
    queue_sum     bigint NOT NULL,
    queues        bytea NOT NULL,
    starts        bytea NOT NULL,
    PRIMARY KEY (data_type, day, namespace, pipeline_name, task_name, status, reason)
);

-- The same for all namespaces together, read by callers who may read every
-- namespace and group by none: a tenth of the rows at ten namespaces. It
-- has no namespace column, so a namespace condition cannot apply to it by
-- mistake.
CREATE TABLE record_daily_all (LIKE record_daily);
ALTER TABLE record_daily_all DROP COLUMN namespace;
ALTER TABLE record_daily_all ADD PRIMARY KEY (data_type, day, pipeline_name, task_name, status, reason);

-- A row stays in its page up to 8 kB (a few hundred runs a day), where
-- PostgreSQL would move lists out from 2 kB: a statistics read then fetches
-- no TOAST. Lists of a busier day go to TOAST uncompressed, so a read
-- copies them instead of decompressing them.
ALTER TABLE record_daily SET (toast_tuple_target = 8160);
ALTER TABLE record_daily_all SET (toast_tuple_target = 8160);
ALTER TABLE record_daily ALTER COLUMN durs SET STORAGE EXTERNAL, ALTER COLUMN queues SET STORAGE EXTERNAL,
    ALTER COLUMN starts SET STORAGE EXTERNAL;
ALTER TABLE record_daily_all ALTER COLUMN durs SET STORAGE EXTERNAL, ALTER COLUMN queues SET STORAGE EXTERNAL,
    ALTER COLUMN starts SET STORAGE EXTERNAL;

-- sign is +1 for a Record that entered the key and day, -1 for one that left
-- it (deleted, or rewritten with another key, day, duration or queue time).
CREATE TABLE record_daily_deltas (
    data_type     text NOT NULL,
    day           bigint NOT NULL,
    namespace     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    sign          smallint NOT NULL,
    start_us      bigint,
    duration_us   bigint,
    queue_us      bigint
);

-- The values a Record adds to record_daily; the store computes the same
-- expressions when it reads Records directly (store/aggregate_stats.go). A
-- set-returning SQL function, so that PostgreSQL inlines it into the
-- triggers' statements (LATERAL) instead of calling it per Record.
CREATE FUNCTION annals_daily_values(r records, sign smallint) RETURNS SETOF record_daily_deltas AS $$
    SELECT r.data_type,
        COALESCE(CAST(floor(EXTRACT(EPOCH FROM r.start_time) / 86400) AS bigint), -2147483648),
        r.namespace, r.pipeline_name, r.task_name, r.status, r.reason, sign,
        CAST(EXTRACT(EPOCH FROM r.start_time) * 1000000 AS bigint),
        r.duration_us,
        CAST(EXTRACT(EPOCH FROM r.start_time - r.creation_time) * 1000000 AS bigint)
$$ LANGUAGE sql IMMUTABLE;

CREATE FUNCTION annals_daily_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_daily_deltas SELECT v.* FROM new_rows AS n, LATERAL annals_daily_values(n, CAST(1 AS smallint)) AS v;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION annals_daily_delete() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_daily_deltas SELECT v.* FROM old_rows AS o, LATERAL annals_daily_values(o, CAST(-1 AS smallint)) AS v;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- An update moves a Record only when one of the columns record_daily uses
-- changed (the store never changes a uid): a finished run leaves its
-- Running key, a label edit adds nothing.
CREATE FUNCTION annals_daily_update() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_daily_deltas
    WITH changed AS (
        SELECT o.uid FROM old_rows AS o JOIN new_rows AS n USING (uid)
        WHERE (o.namespace, o.data_type, o.pipeline_name, o.task_name, o.status, o.reason, o.start_time, o.duration_us, o.creation_time)
            IS DISTINCT FROM (n.namespace, n.data_type, n.pipeline_name, n.task_name, n.status, n.reason, n.start_time, n.duration_us, n.creation_time)
    )
    SELECT v.* FROM old_rows AS o, LATERAL annals_daily_values(o, CAST(-1 AS smallint)) AS v WHERE o.uid IN (SELECT uid FROM changed)
    UNION ALL
    SELECT v.* FROM new_rows AS n, LATERAL annals_daily_values(n, CAST(1 AS smallint)) AS v WHERE n.uid IN (SELECT uid FROM changed);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_daily_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_daily_insert();
CREATE TRIGGER records_daily_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_daily_delete();
CREATE TRIGGER records_daily_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_daily_update();

INSERT INTO record_daily
SELECT data_type, day, namespace, pipeline_name, task_name, status, reason,
    COUNT(*), MAX(start_us),
    COUNT(duration_us), MIN(duration_us), MAX(duration_us), COALESCE(CAST(SUM(duration_us) AS bigint), 0),
    COALESCE(string_agg(int8send(duration_us), ''::bytea ORDER BY duration_us), ''::bytea),
    COUNT(queue_us), MIN(queue_us), MAX(queue_us), COALESCE(CAST(SUM(queue_us) AS bigint), 0),
    COALESCE(string_agg(int8send(queue_us), ''::bytea ORDER BY queue_us), ''::bytea),
    COALESCE(string_agg(int8send(start_us), ''::bytea ORDER BY start_us), ''::bytea)
FROM (SELECT v.* FROM records AS r, LATERAL annals_daily_values(r, CAST(1 AS smallint)) AS v) AS v
GROUP BY data_type, day, namespace, pipeline_name, task_name, status, reason;

INSERT INTO record_daily_all
SELECT data_type, day, pipeline_name, task_name, status, reason,
    COUNT(*), MAX(start_us),
    COUNT(duration_us), MIN(duration_us), MAX(duration_us), COALESCE(CAST(SUM(duration_us) AS bigint), 0),
    COALESCE(string_agg(int8send(duration_us), ''::bytea ORDER BY duration_us), ''::bytea),
    COUNT(queue_us), MIN(queue_us), MAX(queue_us), COALESCE(CAST(SUM(queue_us) AS bigint), 0),
    COALESCE(string_agg(int8send(queue_us), ''::bytea ORDER BY queue_us), ''::bytea),
    COALESCE(string_agg(int8send(start_us), ''::bytea ORDER BY start_us), ''::bytea)
FROM (SELECT v.* FROM records AS r, LATERAL annals_daily_values(r, CAST(1 AS smallint)) AS v) AS v
GROUP BY data_type, day, pipeline_name, task_name, status, reason;
