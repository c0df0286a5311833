-- The SQLite twin of postgres/00004_aggregates: columns the aggregation
-- engine groups and sums on (see there). Times are TEXT in bun's UTC layout
-- ('2006-01-02 15:04:05.999999+00:00'), as everywhere in this schema.
ALTER TABLE records ADD COLUMN creation_time TIMESTAMP;
ALTER TABLE records ADD COLUMN repository TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN duration_us INTEGER;

-- creationTimestamp in RFC 3339 becomes bun's layout in UTC: whole seconds
-- through strftime (which applies the offset), then the fraction's digits,
-- cut to microseconds with trailing zeros dropped. Anything else stays NULL.
UPDATE records SET creation_time = (
    SELECT CASE WHEN base IS NULL THEN NULL
        ELSE base || CASE WHEN frac <> '' THEN '.' || frac ELSE '' END || '+00:00' END
    FROM (SELECT strftime('%Y-%m-%d %H:%M:%S', ts) AS base,
                 CASE WHEN substr(ts, 20, 1) = '.'
                     THEN rtrim(substr(substr(ts, 21, length(ts) - 20 - CASE WHEN ts LIKE '%Z' THEN 1 ELSE 6 END) || '000000', 1, 6), '0')
                     ELSE '' END AS frac
          FROM (SELECT json_extract(data, '$.metadata.creationTimestamp') AS ts) AS raw
          WHERE ts GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'
            AND (ts GLOB '*Z' OR ts GLOB '*[+-][0-9][0-9]:[0-9][0-9]')) AS parts)
WHERE json_valid(data) AND json_type(data) = 'object'
  AND json_type(data, '$.metadata.creationTimestamp') = 'text';

UPDATE records SET repository = json_extract(data, '$.metadata.annotations."pipelinesascode.tekton.dev/repository"')
WHERE (data_type LIKE 'tekton.dev/%.TaskRun' OR data_type LIKE 'tekton.dev/%.PipelineRun') AND json_valid(data)
  AND json_type(data, '$.metadata.annotations."pipelinesascode.tekton.dev/repository"') = 'text';

-- start_time and completion_time hold microseconds at most: whole seconds
-- from strftime, the fraction from the text.
UPDATE records SET duration_us =
    (CAST(strftime('%s', completion_time) AS INTEGER) - CAST(strftime('%s', start_time) AS INTEGER)) * 1000000
    + CASE WHEN substr(completion_time, 20, 1) = '.'
        THEN CAST(substr(substr(completion_time, 21, instr(completion_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END
    - CASE WHEN substr(start_time, 20, 1) = '.'
        THEN CAST(substr(substr(start_time, 21, instr(start_time, '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END
WHERE start_time IS NOT NULL AND completion_time IS NOT NULL;

CREATE INDEX records_creation ON records (creation_time, uid);
CREATE INDEX records_repository ON records (namespace, repository) WHERE repository <> '';
