-- The SQLite twin of postgres/00007_log_objects.
CREATE TABLE log_objects (
    namespace   TEXT NOT NULL,
    record_uid  TEXT NOT NULL,
    object_key  TEXT NOT NULL UNIQUE,
    size        INTEGER NOT NULL,
    compression TEXT NOT NULL DEFAULT '',
    chunk_ends  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, record_uid),
    FOREIGN KEY (namespace, record_uid) REFERENCES records (namespace, uid) ON DELETE CASCADE
);

CREATE TABLE log_object_deletes (
    object_key TEXT PRIMARY KEY,
    due_at     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX log_object_deletes_due ON log_object_deletes (due_at);

CREATE TRIGGER log_object_gone AFTER DELETE ON log_objects
BEGIN
    INSERT INTO log_object_deletes (object_key, due_at)
    VALUES (OLD.object_key, CAST(strftime('%s', 'now') AS INTEGER))
    ON CONFLICT (object_key) DO UPDATE SET due_at = excluded.due_at;
END;
