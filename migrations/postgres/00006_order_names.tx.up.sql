-- Orders by run name, status and pipeline, and the name filters (runNames,
-- nameContains). Text sorts in the C collation (byte order, as on SQLite),
-- and an empty name or pipeline sorts as "no value", last: the expressions
-- here are exactly those of store/list.go, so the planner matches them.
-- Additive only: the previous version keeps working during a rollout.
CREATE INDEX records_name_order ON records ((NULLIF(run_name, '') COLLATE "C"), uid);
CREATE INDEX records_status_order ON records ((status COLLATE "C"), uid);
CREATE INDEX records_pipeline_order ON records ((NULLIF(pipeline_name, '') COLLATE "C"), uid);
CREATE INDEX results_status_order ON results ((summary_status COLLATE "C"), uid);
CREATE INDEX records_run_name ON records (run_name, namespace);

-- nameContains is LIKE '%text%', which a trigram index serves. pg_trgm ships
-- with PostgreSQL but creating it needs rights the database user may lack:
-- then the migration still succeeds, without the index (nameContains scans),
-- and Annals logs a warning at each migrate (store.Migrate checks for the
-- index). The extension goes to public, not to the search_path's schema, so
-- that dropping one schema does not drop it for others; the index names its
-- operator class with the extension's schema, wherever an operator put it.
DO $$
DECLARE
    trgm_schema name;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'annals: pg_trgm is unavailable (%): nameContains will scan instead of using an index', SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        -- fastupdate off: every write goes into the index itself, so that a
        -- search never reads a long list of pending entries (30,000 new runs
        -- made one search 100 ms instead of under 1 ms until a vacuum).
        EXECUTE format('CREATE INDEX records_run_name_trgm ON records USING gin (run_name %I.gin_trgm_ops) WITH (fastupdate = off)', trgm_schema);
    END IF;
END
$$;
