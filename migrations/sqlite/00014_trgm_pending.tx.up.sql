-- The SQLite twin of postgres/00014_trgm_pending, which changes how the
-- PostgreSQL trigram index of nameContains takes new entries. SQLite has no
-- such index (nameContains scans there), so there is nothing to change; the
-- migration keeps both dialects at the same version.
SELECT 1;
