-- The objects the admin API serves, one row each, and the store-wide resourceVersion counter
-- that doubles as the data plane's generation: every committed write bumps it in the same
-- transaction, and each data-plane process compiles its tables when it sees a new value.

CREATE TABLE store_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  resource_version INTEGER NOT NULL
) STRICT;

INSERT INTO store_state (id, resource_version) VALUES (1, 0);

CREATE TABLE objects (
  kind TEXT NOT NULL,
  namespace TEXT NOT NULL,          -- '' for cluster-scoped kinds (IngressClass)
  name TEXT NOT NULL,
  uid TEXT NOT NULL UNIQUE,
  resource_version INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  labels TEXT,                      -- JSON object or NULL
  annotations TEXT,                 -- JSON object or NULL
  content TEXT NOT NULL,            -- JSON: the storage version's body without metadata
  private_key TEXT,                 -- Secret tls.key: write-only, never selected by a read path
  PRIMARY KEY (kind, namespace, name)
) STRICT;

-- What the data plane reports about each object (served, conflicts, compile problems).
-- Written by the data plane without bumping resource_version, so reporting never triggers a rebuild.
CREATE TABLE object_status (
  kind TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,             -- JSON
  observed_version INTEGER NOT NULL,
  PRIMARY KEY (kind, namespace, name)
) STRICT;
