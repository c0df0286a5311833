-- The SQLite twin of postgres/00009_run_views.
ALTER TABLE records ADD COLUMN run_view text;
