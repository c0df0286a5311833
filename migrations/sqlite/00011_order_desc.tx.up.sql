-- The SQLite twin of postgres/00011_order_desc, which adds indexes for the
-- descending name and pipeline orders. SQLite's planner serves those from
-- the indexes of 00006 already (EXPLAIN QUERY PLAN scans them without a
-- sort), so there is nothing to add; the migration keeps both dialects at
-- the same version.
SELECT 1;
