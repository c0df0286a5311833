-- Counts of Records by the columns facets group on (namespace, data type,
-- Pipeline, Task, status, reason), kept by the database itself so that a
-- facet over a million Records reads a few thousand rows.
--
-- Writers never touch record_rollup: statement triggers on records append
-- signed counts to record_rollup_deltas (no row is updated, so concurrent
-- writers never wait on each other or deadlock), and the store folds the
-- deltas into record_rollup from time to time (store/rollup.go). A reader
-- adds both tables up in one statement, so it sees exactly the Records of
-- its snapshot whether or not a fold has run. The triggers see every write:
-- the store's, retention's deletes and a Result's cascaded delete alike.
CREATE TABLE record_rollup (
    namespace     text NOT NULL,
    data_type     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    n             bigint NOT NULL,
    PRIMARY KEY (namespace, data_type, pipeline_name, task_name, status, reason)
);

CREATE TABLE record_rollup_deltas (
    namespace     text NOT NULL,
    data_type     text NOT NULL,
    pipeline_name text NOT NULL,
    task_name     text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    n             bigint NOT NULL
);

-- One delta row per key a statement changed, not per Record: a batch of 200
-- writes of one Pipeline's runs adds a handful of rows. An update that
-- changes none of the key columns adds nothing (its -1 and +1 cancel).
CREATE FUNCTION annals_rollup_insert() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_rollup_deltas
    SELECT namespace, data_type, pipeline_name, task_name, status, reason, COUNT(*)
    FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION annals_rollup_delete() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_rollup_deltas
    SELECT namespace, data_type, pipeline_name, task_name, status, reason, -COUNT(*)
    FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION annals_rollup_update() RETURNS trigger AS $$
BEGIN
    INSERT INTO record_rollup_deltas
    SELECT namespace, data_type, pipeline_name, task_name, status, reason, SUM(n)
    FROM (SELECT namespace, data_type, pipeline_name, task_name, status, reason, -1 AS n FROM old_rows
          UNION ALL
          SELECT namespace, data_type, pipeline_name, task_name, status, reason, 1 FROM new_rows) AS d
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING SUM(n) <> 0;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER records_rollup_insert AFTER INSERT ON records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_rollup_insert();
CREATE TRIGGER records_rollup_delete AFTER DELETE ON records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_rollup_delete();
CREATE TRIGGER records_rollup_update AFTER UPDATE ON records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annals_rollup_update();

INSERT INTO record_rollup
SELECT namespace, data_type, pipeline_name, task_name, status, reason, COUNT(*)
FROM records GROUP BY 1, 2, 3, 4, 5, 6;
