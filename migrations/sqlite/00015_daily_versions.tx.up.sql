-- A version per UTC day of record_daily (00013), changed by every fold
-- that changes a row of that day; see the PostgreSQL migration.
CREATE TABLE record_daily_days (
    day     INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);

INSERT INTO record_daily_days (day, version) SELECT DISTINCT day, 1 FROM record_daily;
