-- Columns the aggregation engine (the Summary API, analytics) groups and sums
-- on, extracted from data on every write like the columns of 00001:
--   creation_time  metadata.creationTimestamp of any object (NULL without one)
--   repository     the pipelinesascode.tekton.dev/repository annotation of a run
--   duration_us    completion - start of a run in microseconds: exact, where
--                  duration_ms is rounded and SQLite's date functions stop at
--                  milliseconds
-- Additive only: the previous version keeps working during a rollout.
ALTER TABLE records ADD COLUMN creation_time timestamptz;
ALTER TABLE records ADD COLUMN repository text NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN duration_us bigint;

-- A malformed creationTimestamp must leave the column NULL, not fail the
-- migration; fractions past microseconds are cut, as the store cuts them.
CREATE OR REPLACE FUNCTION pg_temp.annals_time_or_null(v text) RETURNS timestamptz AS $$
BEGIN
    IF v !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+){0,1}(Z|[+-]\d\d:\d\d)$' THEN
        RETURN NULL;
    END IF;
    RETURN regexp_replace(v, '(\.\d{6})\d+', '\1')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

UPDATE records SET
    creation_time = CASE WHEN jsonb_typeof(data #> '{metadata,creationTimestamp}') = 'string'
        THEN pg_temp.annals_time_or_null(data #>> '{metadata,creationTimestamp}') END,
    repository = CASE WHEN (data_type LIKE 'tekton.dev/%.TaskRun' OR data_type LIKE 'tekton.dev/%.PipelineRun')
            AND jsonb_typeof(data #> '{metadata,annotations,pipelinesascode.tekton.dev/repository}') = 'string'
        THEN data #>> '{metadata,annotations,pipelinesascode.tekton.dev/repository}' ELSE '' END,
    duration_us = CAST(EXTRACT(EPOCH FROM completion_time - start_time) * 1000000 AS bigint)
WHERE jsonb_typeof(data) = 'object';

DROP FUNCTION pg_temp.annals_time_or_null(text);

CREATE INDEX records_creation ON records (creation_time, uid);
CREATE INDEX records_repository ON records (namespace, repository) WHERE repository <> '';
