-- The compact typed view of a run (message, pod, params, results, steps),
-- extracted from data on write so that typed queries never read or decode
-- the whole object. Plain json: it is only ever read back whole. Existing
-- rows are filled by the store after migrating (store/runview.go); until
-- then, reads fall back to data.
ALTER TABLE records ADD COLUMN run_view json;
