-- Run statistics per UTC day of the start time; see the PostgreSQL
-- migration of the same number. SQLite has only row triggers, so each write
-- of a column record_daily uses adds a -1 row for the old Record and a +1
-- row for the new one. Times are TEXT in bun's UTC layout; the microseconds
-- are read as store/recovery.go's epochMicrosSQL reads them. A migration that
-- rebuilds records must create these triggers again.
-- Record counts for all namespaces together; see the PostgreSQL migration.
CREATE TABLE record_rollup_all (
    data_type     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (data_type, pipeline_name, task_name, status, reason)
);
INSERT INTO record_rollup_all (data_type, pipeline_name, task_name, status, reason, n)
SELECT data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup GROUP BY 1, 2, 3, 4, 5;

CREATE TABLE record_daily (
    data_type     TEXT NOT NULL,
    day           INTEGER NOT NULL,
    namespace     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    last_start    INTEGER,
    dur_n         INTEGER NOT NULL,
    dur_min       INTEGER,
    dur_max       INTEGER,
    dur_sum       INTEGER NOT NULL,
    durs          BLOB NOT NULL,
    queue_n       INTEGER NOT NULL,
    queue_min     INTEGER,
    queue_max     INTEGER,
    queue_sum     INTEGER NOT NULL,
    queues        BLOB NOT NULL,
    starts        BLOB NOT NULL,
    PRIMARY KEY (data_type, day, namespace, pipeline_name, task_name, status, reason)
);

-- All namespaces together; see the PostgreSQL migration.
CREATE TABLE record_daily_all (
    data_type     TEXT NOT NULL,
    day           INTEGER NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    last_start    INTEGER,
    dur_n         INTEGER NOT NULL,
    dur_min       INTEGER,
    dur_max       INTEGER,
    dur_sum       INTEGER NOT NULL,
    durs          BLOB NOT NULL,
    queue_n       INTEGER NOT NULL,
    queue_min     INTEGER,
    queue_max     INTEGER,
    queue_sum     INTEGER NOT NULL,
    queues        BLOB NOT NULL,
    starts        BLOB NOT NULL,
    PRIMARY KEY (data_type, day, pipeline_name, task_name, status, reason)
);

CREATE TABLE record_daily_deltas (
    id            INTEGER PRIMARY KEY,
    data_type     TEXT NOT NULL,
    day           INTEGER NOT NULL,
    namespace     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    sign          INTEGER NOT NULL,
    start_us      INTEGER,
    duration_us   INTEGER,
    queue_us      INTEGER
);

CREATE TRIGGER records_daily_insert AFTER INSERT ON records BEGIN
    INSERT INTO record_daily_deltas (data_type, day, namespace, pipeline_name, task_name, status, reason, sign, start_us, duration_us, queue_us)
    VALUES (new.data_type, COALESCE(CAST(floor(CAST(strftime('%s', new.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648),
        new.namespace, new.pipeline_name, new.task_name, new.status, new.reason, 1,
        (CAST(strftime('%s', new.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.start_time, 20, 1) = '.' THEN CAST(substr(substr(new.start_time, 21, instr(new.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END),
        new.duration_us,
        (CAST(strftime('%s', new.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.start_time, 20, 1) = '.' THEN CAST(substr(substr(new.start_time, 21, instr(new.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', new.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.creation_time, 20, 1) = '.' THEN CAST(substr(substr(new.creation_time, 21, instr(new.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END));
END;

CREATE TRIGGER records_daily_delete AFTER DELETE ON records BEGIN
    INSERT INTO record_daily_deltas (data_type, day, namespace, pipeline_name, task_name, status, reason, sign, start_us, duration_us, queue_us)
    VALUES (old.data_type, COALESCE(CAST(floor(CAST(strftime('%s', old.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648),
        old.namespace, old.pipeline_name, old.task_name, old.status, old.reason, -1,
        (CAST(strftime('%s', old.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.start_time, 20, 1) = '.' THEN CAST(substr(substr(old.start_time, 21, instr(old.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END),
        old.duration_us,
        (CAST(strftime('%s', old.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.start_time, 20, 1) = '.' THEN CAST(substr(substr(old.start_time, 21, instr(old.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', old.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.creation_time, 20, 1) = '.' THEN CAST(substr(substr(old.creation_time, 21, instr(old.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END));
END;

CREATE TRIGGER records_daily_update AFTER UPDATE OF namespace, data_type, pipeline_name, task_name, status, reason, start_time, duration_us, creation_time ON records
WHEN old.namespace IS NOT new.namespace OR old.data_type IS NOT new.data_type OR old.pipeline_name IS NOT new.pipeline_name
    OR old.task_name IS NOT new.task_name OR old.status IS NOT new.status OR old.reason IS NOT new.reason
    OR old.start_time IS NOT new.start_time OR old.duration_us IS NOT new.duration_us OR old.creation_time IS NOT new.creation_time
BEGIN
    INSERT INTO record_daily_deltas (data_type, day, namespace, pipeline_name, task_name, status, reason, sign, start_us, duration_us, queue_us)
    VALUES (old.data_type, COALESCE(CAST(floor(CAST(strftime('%s', old.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648),
        old.namespace, old.pipeline_name, old.task_name, old.status, old.reason, -1,
        (CAST(strftime('%s', old.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.start_time, 20, 1) = '.' THEN CAST(substr(substr(old.start_time, 21, instr(old.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END),
        old.duration_us,
        (CAST(strftime('%s', old.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.start_time, 20, 1) = '.' THEN CAST(substr(substr(old.start_time, 21, instr(old.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', old.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(old.creation_time, 20, 1) = '.' THEN CAST(substr(substr(old.creation_time, 21, instr(old.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END)),
           (new.data_type, COALESCE(CAST(floor(CAST(strftime('%s', new.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648),
        new.namespace, new.pipeline_name, new.task_name, new.status, new.reason, 1,
        (CAST(strftime('%s', new.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.start_time, 20, 1) = '.' THEN CAST(substr(substr(new.start_time, 21, instr(new.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END),
        new.duration_us,
        (CAST(strftime('%s', new.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.start_time, 20, 1) = '.' THEN CAST(substr(substr(new.start_time, 21, instr(new.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', new.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(new.creation_time, 20, 1) = '.' THEN CAST(substr(substr(new.creation_time, 21, instr(new.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END));
END;

-- Values packed as 8-byte big-endian integers in ascending order (printf's
-- %016x writes a negative number in two's complement).
INSERT INTO record_daily (data_type, day, namespace, pipeline_name, task_name, status, reason, n, last_start,
    dur_n, dur_min, dur_max, dur_sum, durs, queue_n, queue_min, queue_max, queue_sum, queues, starts)
SELECT data_type, day, namespace, pipeline_name, task_name, status, reason,
    COUNT(*), MAX(start_us),
    COUNT(duration_us), MIN(duration_us), MAX(duration_us), COALESCE(SUM(duration_us), 0),
    COALESCE(unhex(group_concat(CASE WHEN duration_us IS NOT NULL THEN printf('%016x', duration_us) END, '' ORDER BY duration_us)), x''),
    COUNT(queue_us), MIN(queue_us), MAX(queue_us), COALESCE(SUM(queue_us), 0),
    COALESCE(unhex(group_concat(CASE WHEN queue_us IS NOT NULL THEN printf('%016x', queue_us) END, '' ORDER BY queue_us)), x''),
    COALESCE(unhex(group_concat(CASE WHEN start_us IS NOT NULL THEN printf('%016x', start_us) END, '' ORDER BY start_us)), x'')
FROM (SELECT r.data_type, COALESCE(CAST(floor(CAST(strftime('%s', r.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648) AS day,
        r.namespace, r.pipeline_name, r.task_name, r.status, r.reason,
        (CAST(strftime('%s', r.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.start_time, 20, 1) = '.' THEN CAST(substr(substr(r.start_time, 21, instr(r.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) AS start_us,
        r.duration_us,
        (CAST(strftime('%s', r.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.start_time, 20, 1) = '.' THEN CAST(substr(substr(r.start_time, 21, instr(r.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', r.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.creation_time, 20, 1) = '.' THEN CAST(substr(substr(r.creation_time, 21, instr(r.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) AS queue_us
    FROM records AS r) AS v
GROUP BY data_type, day, namespace, pipeline_name, task_name, status, reason;

INSERT INTO record_daily_all (data_type, day, pipeline_name, task_name, status, reason, n, last_start,
    dur_n, dur_min, dur_max, dur_sum, durs, queue_n, queue_min, queue_max, queue_sum, queues, starts)
SELECT data_type, day, pipeline_name, task_name, status, reason,
    COUNT(*), MAX(start_us),
    COUNT(duration_us), MIN(duration_us), MAX(duration_us), COALESCE(SUM(duration_us), 0),
    COALESCE(unhex(group_concat(CASE WHEN duration_us IS NOT NULL THEN printf('%016x', duration_us) END, '' ORDER BY duration_us)), x''),
    COUNT(queue_us), MIN(queue_us), MAX(queue_us), COALESCE(SUM(queue_us), 0),
    COALESCE(unhex(group_concat(CASE WHEN queue_us IS NOT NULL THEN printf('%016x', queue_us) END, '' ORDER BY queue_us)), x''),
    COALESCE(unhex(group_concat(CASE WHEN start_us IS NOT NULL THEN printf('%016x', start_us) END, '' ORDER BY start_us)), x'')
FROM (SELECT r.data_type, COALESCE(CAST(floor(CAST(strftime('%s', r.start_time) AS INTEGER) / 86400.0) AS INTEGER), -2147483648) AS day,
        r.namespace, r.pipeline_name, r.task_name, r.status, r.reason,
        (CAST(strftime('%s', r.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.start_time, 20, 1) = '.' THEN CAST(substr(substr(r.start_time, 21, instr(r.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) AS start_us,
        r.duration_us,
        (CAST(strftime('%s', r.start_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.start_time, 20, 1) = '.' THEN CAST(substr(substr(r.start_time, 21, instr(r.start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) - (CAST(strftime('%s', r.creation_time) AS INTEGER) * 1000000 + CASE WHEN substr(r.creation_time, 20, 1) = '.' THEN CAST(substr(substr(r.creation_time, 21, instr(r.creation_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END) AS queue_us
    FROM records AS r) AS v
GROUP BY data_type, day, pipeline_name, task_name, status, reason;
