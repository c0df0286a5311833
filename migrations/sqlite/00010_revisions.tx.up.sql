-- The SQLite twin of postgres/00010_revisions: the revision and failed_step
-- columns (see there), backfilled the same way. json_each's value of a
-- non-object element is not JSON, hence the CASE before each json_extract.
ALTER TABLE records ADD COLUMN revision TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN failed_step TEXT NOT NULL DEFAULT '';

UPDATE records SET revision = COALESCE(
    CASE WHEN json_type(data, '$.metadata.annotations."pipelinesascode.tekton.dev/sha"') = 'text'
        THEN NULLIF(json_extract(data, '$.metadata.annotations."pipelinesascode.tekton.dev/sha"'), '') END,
    CASE WHEN json_type(data, '$.metadata.labels."pipelinesascode.tekton.dev/sha"') = 'text'
        THEN NULLIF(json_extract(data, '$.metadata.labels."pipelinesascode.tekton.dev/sha"'), '') END,
    CASE WHEN data_type LIKE 'tekton.dev/%.PipelineRun' AND json_type(data, '$.spec.params') = 'array' THEN
        (SELECT json_extract(p.value, '$.value') FROM json_each(data, '$.spec.params') AS p
         WHERE p.type = 'object'
           AND CASE WHEN p.type = 'object' THEN json_type(p.value, '$.name') = 'text' AND json_extract(p.value, '$.name') IN ('revision', 'commit')
                    AND json_type(p.value, '$.value') = 'text' AND json_extract(p.value, '$.value') <> '' END
         ORDER BY CASE json_extract(p.value, '$.name') WHEN 'revision' THEN 0 ELSE 1 END, p.key LIMIT 1) END,
    '')
WHERE (data_type LIKE 'tekton.dev/%.TaskRun' OR data_type LIKE 'tekton.dev/%.PipelineRun') AND json_valid(data) AND json_type(data) = 'object';

UPDATE records SET failed_step = COALESCE(
    (SELECT json_extract(s.value, '$.name') FROM json_each(data, '$.status.steps') AS s
     WHERE s.type = 'object'
       AND CASE WHEN s.type = 'object' THEN json_type(s.value, '$.name') = 'text'
                AND json_type(s.value, '$.terminated.exitCode') IN ('integer', 'real') AND json_extract(s.value, '$.terminated.exitCode') <> 0 END
     ORDER BY s.key LIMIT 1), '')
WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status = 'Failed' AND json_valid(data) AND json_type(data, '$.status.steps') = 'array';

CREATE INDEX records_result_run ON records (result_uid, run_name, namespace, revision)
    WHERE revision <> '' AND data_type LIKE 'tekton.dev/%.PipelineRun';

-- As in postgres/00010 (no INCLUDE: the columns follow the keys).
CREATE INDEX records_task_outcomes ON records (start_time, uid, namespace, result_uid, pipeline_run_name, pipeline_name, task_name, revision, status)
    WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND task_name <> '';
CREATE INDEX records_pipeline_outcomes ON records (namespace, pipeline_name, completion_time, uid, status, start_time)
    WHERE data_type LIKE 'tekton.dev/%.PipelineRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND completion_time IS NOT NULL;
