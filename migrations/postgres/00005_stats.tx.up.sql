-- Analytics (recordStats) mostly asks for one kind of run in a window of
-- start times. This index answers it without reading the Records' rows
-- (index-only scan): the window and kind as keys, and as payload the columns
-- the statistics group and measure on. Additive only.
CREATE INDEX records_stats_start ON records (data_type, start_time)
    INCLUDE (namespace, pipeline_name, task_name, status, duration_us, creation_time);
