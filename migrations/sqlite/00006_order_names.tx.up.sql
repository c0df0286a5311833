-- The SQLite twin of postgres/00006_order_names: the same orders (SQLite
-- compares text byte by byte already). nameContains scans run_name here
-- (SQLite has no trigram index); correct, and slower on large tables.
CREATE INDEX records_name_order ON records (NULLIF(run_name, ''), uid);
CREATE INDEX records_status_order ON records (status, uid);
CREATE INDEX records_pipeline_order ON records (NULLIF(pipeline_name, ''), uid);
CREATE INDEX results_status_order ON results (summary_status, uid);
CREATE INDEX records_run_name ON records (run_name, namespace);
