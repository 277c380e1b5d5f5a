-- Cluster mode: PostgreSQL is the source of truth; each node mirrors it into its own SQLite file
-- (the same objects with the same resourceVersions). Columns match the SQLite store's, so a row
-- moves between the two unchanged.

CREATE TABLE store_state (
  id integer PRIMARY KEY CHECK (id = 1),
  -- Which store this is: a node whose mirror copies another store (or a restored one) starts over.
  store_uid text NOT NULL,
  -- Bumped by every committed write under this row's lock, so versions are dense and in commit order.
  resource_version bigint NOT NULL,
  routing_version bigint NOT NULL,
  -- Deletion rows at or below this are pruned: a node further behind copies everything again.
  deletions_horizon bigint NOT NULL DEFAULT 0
);
INSERT INTO store_state (id, store_uid, resource_version, routing_version) VALUES (1, md5(random()::text || clock_timestamp()::text), 0, 0);

CREATE TABLE objects (
  kind text NOT NULL,
  namespace text NOT NULL,
  name text NOT NULL,
  uid text NOT NULL UNIQUE,
  resource_version bigint NOT NULL,
  generation bigint NOT NULL,
  created_at text NOT NULL,
  labels text,
  annotations text,
  content text NOT NULL,
  private_key text,               -- write-only: TLS keys and non-TLS Secret values, never served
  PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX objects_by_resource_version ON objects (resource_version);

CREATE TABLE object_deletions (
  resource_version bigint PRIMARY KEY,
  kind text NOT NULL,
  namespace text NOT NULL,
  name text NOT NULL
);

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at text NOT NULL,
  actor text NOT NULL,
  client text NOT NULL,
  verb text NOT NULL,
  kind text NOT NULL,
  namespace text NOT NULL,
  name text NOT NULL,
  resource_version bigint NOT NULL,
  outcome text NOT NULL
);

-- The gateway nodes: each upserts its row every heartbeat, with the database's clock (no skew).
CREATE TABLE nodes (
  name text PRIMARY KEY,
  addresses jsonb NOT NULL,
  version text NOT NULL,
  served_resource_version bigint NOT NULL,
  problem text,
  started_at timestamptz NOT NULL,
  last_seen timestamptz NOT NULL
);
