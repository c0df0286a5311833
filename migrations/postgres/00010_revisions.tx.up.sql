-- Columns of the flaky-task and failure hot-spot analytics, extracted from
-- data on every write (store/extract.go) and backfilled here the same way:
--   revision     the source commit a run built: the pipelines-as-code SHA
--                annotation, else its label, else (PipelineRuns only) the
--                first non-empty string param named revision, else commit
--   failed_step  of a failed TaskRun, its first step that terminated with a
--                non-zero exit code (steps without a string name passed over)
-- Additive only: the previous version keeps working during a rollout.
ALTER TABLE records ADD COLUMN revision text NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN failed_step text NOT NULL DEFAULT '';

UPDATE records SET revision = COALESCE(
    CASE WHEN jsonb_typeof(data #> '{metadata,annotations,pipelinesascode.tekton.dev/sha}') = 'string'
        THEN NULLIF(data #>> '{metadata,annotations,pipelinesascode.tekton.dev/sha}', '') END,
    CASE WHEN jsonb_typeof(data #> '{metadata,labels,pipelinesascode.tekton.dev/sha}') = 'string'
        THEN NULLIF(data #>> '{metadata,labels,pipelinesascode.tekton.dev/sha}', '') END,
    CASE WHEN data_type LIKE 'tekton.dev/%.PipelineRun' AND jsonb_typeof(data #> '{spec,params}') = 'array' THEN
        (SELECT p ->> 'value' FROM jsonb_array_elements(data #> '{spec,params}') WITH ORDINALITY AS e (p, i)
         WHERE jsonb_typeof(p) = 'object' AND jsonb_typeof(p -> 'name') = 'string' AND p ->> 'name' IN ('revision', 'commit')
           AND jsonb_typeof(p -> 'value') = 'string' AND p ->> 'value' <> ''
         ORDER BY CASE p ->> 'name' WHEN 'revision' THEN 0 ELSE 1 END, i LIMIT 1) END,
    '')
WHERE (data_type LIKE 'tekton.dev/%.TaskRun' OR data_type LIKE 'tekton.dev/%.PipelineRun') AND jsonb_typeof(data) = 'object';

UPDATE records SET failed_step = COALESCE(
    (SELECT s ->> 'name' FROM jsonb_array_elements(data #> '{status,steps}') WITH ORDINALITY AS e (s, i)
     WHERE jsonb_typeof(s) = 'object' AND jsonb_typeof(s -> 'name') = 'string'
       AND jsonb_typeof(s #> '{terminated,exitCode}') = 'number' AND (s #>> '{terminated,exitCode}')::numeric <> 0
     ORDER BY i LIMIT 1), '')
WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status = 'Failed' AND jsonb_typeof(data #> '{status,steps}') = 'array';

-- A TaskRun's revision is its PipelineRun's, looked up by run name within
-- its Result.
CREATE INDEX records_result_run ON records (result_uid, run_name) INCLUDE (namespace, revision)
    WHERE revision <> '' AND data_type LIKE 'tekton.dev/%.PipelineRun';

-- The finished runs flakyTasks and pipelineRecovery read (store/flaky.go,
-- store/recovery.go write the same predicates), carrying what they use so
-- the scan does not touch the Records' rows; recovery's in window order.
CREATE INDEX records_task_outcomes ON records (start_time)
    INCLUDE (uid, namespace, result_uid, pipeline_run_name, pipeline_name, task_name, revision, status)
    WHERE data_type LIKE 'tekton.dev/%.TaskRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND task_name <> '';
CREATE INDEX records_pipeline_outcomes ON records (namespace, pipeline_name, completion_time, uid)
    INCLUDE (status, start_time)
    WHERE data_type LIKE 'tekton.dev/%.PipelineRun' AND status IN ('Succeeded', 'Failed') AND pipeline_name <> '' AND completion_time IS NOT NULL;
