-- Descending orders by run name and pipeline. They sort "no value" (an
-- empty name or pipeline) last in both directions, so a descending list is
-- ORDER BY ... DESC NULLS LAST, uid DESC: not a backward scan of the
-- ascending indexes of 00006 (that gives NULLS FIRST), and the planner
-- sorted the whole table for it (EXPLAIN on 700,000 records). The
-- expressions are exactly those of store/list.go. Status needs none: it is
-- never NULL, so a backward scan of records_status_order serves it.
CREATE INDEX records_name_order_desc ON records ((NULLIF(run_name, '') COLLATE "C") DESC NULLS LAST, uid DESC);
CREATE INDEX records_pipeline_order_desc ON records ((NULLIF(pipeline_name, '') COLLATE "C") DESC NULLS LAST, uid DESC);
