-- The trigram index of nameContains (00006) took every new entry straight
-- into its tree (fastupdate off): some twenty trigram keys per write, each
-- a descent and a page change, and a Record is written three times (a run
-- started, running, finished) by updates that are never HOT, so each write
-- adds all its keys again. It was the costliest relation of a write:
-- adding 45,000 writes to 150,000 Records (store/ingest_bench_test.go),
-- 1,870 bytes of WAL per write of 9,630 for the whole database, more than
-- three times the table's own 534.
--
-- A pending list takes new entries as appends and moves them into the
-- tree in sorted batches, a key once per batch: 536 bytes per write (8,305
-- in all), and a fifth less of the server's CPU per write. The list is
-- kept to the smallest size PostgreSQL allows (64 kB), where 00006 had
-- turned it off for fear of the default 4 MB: a search reads the whole
-- list besides the tree, and a list of 4 MB (30,000 new runs before a
-- vacuum) made one search 100 ms. 64 kB holds about 150 writes;
-- the writer that fills it moves them into the tree, so a search reads at
-- most eight pages more (measured on 150,000 Records with the list 7 pages
-- full: the same plan, 0.14 ms warm, 7 more buffers than with no list).
--
-- Only the index's options change: existing entries stay where they are
-- and the previous version keeps working during a rollout. Changing
-- fastupdate takes an ACCESS EXCLUSIVE lock on the index for a moment,
-- which waits for every transaction using records to end, and every
-- statement on records that comes after waits behind it: so it asks with a
-- short lock_timeout, again and again, and only after some 30 seconds of
-- long transactions waits as long as it takes. Without pg_trgm (see 00006)
-- there is no index and nothing to change.
DO $$
DECLARE
    previous text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', '200ms', true);
    FOR attempt IN 1..60 LOOP
        BEGIN
            ALTER INDEX IF EXISTS records_run_name_trgm SET (fastupdate = on, gin_pending_list_limit = 64);
            PERFORM set_config('lock_timeout', previous, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM pg_sleep(0.3);
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', previous, true);
    ALTER INDEX IF EXISTS records_run_name_trgm SET (fastupdate = on, gin_pending_list_limit = 64);
END
$$;
