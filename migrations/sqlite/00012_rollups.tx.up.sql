-- Counts of Records by the columns facets group on, kept by triggers; see
-- the PostgreSQL migration of the same number. SQLite has only row
-- triggers, so each write of a key column adds a -1 and a +1 row; the store
-- folds them into record_rollup from time to time. A migration that rebuilds
-- records must create these triggers again.
CREATE TABLE record_rollup (
    namespace     TEXT NOT NULL,
    data_type     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (namespace, data_type, pipeline_name, task_name, status, reason)
);

CREATE TABLE record_rollup_deltas (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT NOT NULL,
    data_type     TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    task_name     TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    n             INTEGER NOT NULL
);

CREATE TRIGGER records_rollup_insert AFTER INSERT ON records BEGIN
    INSERT INTO record_rollup_deltas (namespace, data_type, pipeline_name, task_name, status, reason, n)
    VALUES (new.namespace, new.data_type, new.pipeline_name, new.task_name, new.status, new.reason, 1);
END;

CREATE TRIGGER records_rollup_delete AFTER DELETE ON records BEGIN
    INSERT INTO record_rollup_deltas (namespace, data_type, pipeline_name, task_name, status, reason, n)
    VALUES (old.namespace, old.data_type, old.pipeline_name, old.task_name, old.status, old.reason, -1);
END;

CREATE TRIGGER records_rollup_update AFTER UPDATE OF namespace, data_type, pipeline_name, task_name, status, reason ON records
WHEN old.namespace IS NOT new.namespace OR old.data_type IS NOT new.data_type OR old.pipeline_name IS NOT new.pipeline_name
    OR old.task_name IS NOT new.task_name OR old.status IS NOT new.status OR old.reason IS NOT new.reason
BEGIN
    INSERT INTO record_rollup_deltas (namespace, data_type, pipeline_name, task_name, status, reason, n)
    VALUES (old.namespace, old.data_type, old.pipeline_name, old.task_name, old.status, old.reason, -1),
           (new.namespace, new.data_type, new.pipeline_name, new.task_name, new.status, new.reason, 1);
END;

INSERT INTO record_rollup (namespace, data_type, pipeline_name, task_name, status, reason, n)
SELECT namespace, data_type, pipeline_name, task_name, status, reason, COUNT(*)
FROM records GROUP BY 1, 2, 3, 4, 5, 6;
