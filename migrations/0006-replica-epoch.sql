-- Cluster mode: a node's SQLite file is a mirror of PostgreSQL, with PostgreSQL's
-- resourceVersions. When the mirror must be replaced whole (PostgreSQL restored from an older
-- backup, or another store), its versions may go back; the epoch moves instead, and every reader
-- that follows the file by version (the data plane's snapshot reader and reloader) reads and
-- compiles everything again rather than trust a version it has seen before.
ALTER TABLE store_state ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
