-- Who changed what, when: one row per admin change, written in the same transaction as the
-- change itself. Never secret material: objects are named, not copied.
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,                 -- ISO 8601
  actor TEXT NOT NULL,              -- 'token' (bearer token) or 'loopback' (no token configured)
  client TEXT NOT NULL,             -- the client's address
  verb TEXT NOT NULL,               -- create, replace, patch, delete, apply
  kind TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  resource_version INTEGER NOT NULL,
  outcome TEXT NOT NULL             -- created, configured, unchanged, deleted
) STRICT;
