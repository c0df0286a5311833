-- Logs whose bytes live in an object store (--log-store). A row points a Log
-- Record at its object, written whole before the row commits. chunk_ends is
-- set for compressed objects only: a JSON array of where each compressed
-- 256 KiB chunk ends in the object, so that a range read fetches only the
-- chunks it needs.
CREATE TABLE log_objects (
    namespace   text NOT NULL,
    record_uid  text NOT NULL,
    object_key  text NOT NULL UNIQUE,
    size        bigint NOT NULL,
    compression text NOT NULL DEFAULT '',
    chunk_ends  text NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, record_uid),
    FOREIGN KEY (namespace, record_uid) REFERENCES records (namespace, uid) ON DELETE CASCADE
);

-- The outbox of object deletions. A row is written in the same transaction
-- as whatever makes an object garbage (the trigger below: a Log, Record or
-- Result deleted, a log rewritten), and before an object is written (due
-- only after a grace period, and removed when the object's row commits), so
-- that neither a crash after a delete nor one during a write leaves an
-- object behind. due_at is in unix seconds; a failed delete is retried later.
CREATE TABLE log_object_deletes (
    object_key text PRIMARY KEY,
    due_at     bigint NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT ''
);
CREATE INDEX log_object_deletes_due ON log_object_deletes (due_at);

CREATE FUNCTION log_object_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_object_deletes (object_key, due_at)
    VALUES (OLD.object_key, floor(extract(epoch FROM now()))::bigint)
    ON CONFLICT (object_key) DO UPDATE SET due_at = EXCLUDED.due_at;
    RETURN OLD;
END
$$;
CREATE TRIGGER log_object_gone AFTER DELETE ON log_objects
    FOR EACH ROW EXECUTE FUNCTION log_object_gone();
