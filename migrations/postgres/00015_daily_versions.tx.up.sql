-- A version per UTC day of record_daily (00013), changed by every fold
-- that changes a row of that day, in the fold's transaction. A server keeps
-- the whole days of a statistics read in memory (store/rollup_daily_cache.go)
-- and uses them again while their day's version stays the same: a 30-day
-- chart then reads 30 versions instead of every row of 30 days.
--
-- Every day holding a row has a version: the days of today's rows start at
-- 1, and only the fold writes rows and versions from now on.
CREATE TABLE record_daily_days (
    day     bigint PRIMARY KEY,
    version bigint NOT NULL
);

INSERT INTO record_daily_days (day, version) SELECT DISTINCT day, 1 FROM record_daily;
