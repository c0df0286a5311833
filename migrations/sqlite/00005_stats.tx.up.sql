-- The SQLite twin of postgres/00005_stats: SQLite has no INCLUDE, so the
-- same columns follow the keys (it can still read them from the index).
CREATE INDEX records_stats_start ON records (data_type, start_time, namespace, pipeline_name, task_name, status, duration_us, creation_time);
