-- Namespaces own their objects: a uid is unique within its namespace only,
-- and every link (a Record to its Result, an annotation to its Result, a log
-- chunk to its Log) carries the namespace, so that a link across namespaces
-- cannot be stored at all. Before, keys were bare uids, and a Record could be
-- attached to a Result of another namespace.

ALTER TABLE result_annotations ADD COLUMN namespace text;
UPDATE result_annotations AS a SET namespace = res.namespace FROM results AS res WHERE res.uid = a.result_uid;
ALTER TABLE result_annotations ALTER COLUMN namespace SET NOT NULL;

ALTER TABLE log_chunks ADD COLUMN namespace text;
UPDATE log_chunks AS c SET namespace = r.namespace FROM records AS r WHERE r.uid = c.record_uid;
ALTER TABLE log_chunks ALTER COLUMN namespace SET NOT NULL;

ALTER TABLE result_annotations DROP CONSTRAINT result_annotations_result_uid_fkey;
ALTER TABLE records DROP CONSTRAINT records_result_uid_fkey;
ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_record_uid_fkey;

ALTER TABLE results DROP CONSTRAINT results_pkey;
ALTER TABLE results ADD PRIMARY KEY (namespace, uid);
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD PRIMARY KEY (namespace, uid);
ALTER TABLE result_annotations DROP CONSTRAINT result_annotations_pkey;
ALTER TABLE result_annotations ADD PRIMARY KEY (namespace, result_uid, key);
ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_pkey;
ALTER TABLE log_chunks ADD PRIMARY KEY (namespace, record_uid, seq);

-- Records attached to a Result of another namespace (written before this
-- migration) keep their names, which say their own namespace: their Result
-- becomes a Result of that namespace, as a new write would create it.
INSERT INTO results (uid, namespace, name, summary_record, summary_type, summary_status, created_at, updated_at, version)
SELECT r.result_uid, r.namespace, min(r.result_name), '', '', 'Unknown', min(r.created_at), max(r.updated_at), 1
FROM records AS r
WHERE NOT EXISTS (SELECT 1 FROM results AS res WHERE res.uid = r.result_uid AND res.namespace = r.namespace)
GROUP BY r.namespace, r.result_uid;

ALTER TABLE result_annotations ADD FOREIGN KEY (namespace, result_uid) REFERENCES results (namespace, uid) ON DELETE CASCADE;
ALTER TABLE records ADD FOREIGN KEY (namespace, result_uid) REFERENCES results (namespace, uid) ON DELETE CASCADE;
ALTER TABLE log_chunks ADD FOREIGN KEY (namespace, record_uid) REFERENCES records (namespace, uid) ON DELETE CASCADE;

-- Lookups by parent go through the namespace too; these also serve the
-- cascading deletes.
DROP INDEX records_result;
CREATE INDEX records_result ON records (namespace, result_uid, created_at, uid);
DROP INDEX records_pipeline_run;
CREATE INDEX records_pipeline_run ON records (namespace, result_uid, pipeline_run_name) WHERE pipeline_run_name <> '';
DROP INDEX records_owner;
CREATE INDEX records_owner ON records (namespace, owner_uid) WHERE owner_uid <> '';

-- Log files written before this migration are named by uid alone; new ones
-- live under their namespace. This lists the Logs whose file has the old
-- name, so that only they (and never a Log of the same uid written later in
-- another namespace) read it.
CREATE TABLE legacy_log_files (
    namespace text NOT NULL,
    uid       text NOT NULL,
    PRIMARY KEY (namespace, uid),
    FOREIGN KEY (namespace, uid) REFERENCES records (namespace, uid) ON DELETE CASCADE
);
CREATE INDEX legacy_log_files_uid ON legacy_log_files (uid);
INSERT INTO legacy_log_files (namespace, uid)
SELECT namespace, uid FROM records
WHERE data_type = 'results.tekton.dev/v1alpha3.Log' AND data->'status'->>'storage' = 'file';
