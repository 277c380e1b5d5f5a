-- State the gateway keeps for itself rather than for an API object: today the self-signed
-- default certificate ("Kubernetes Ingress Controller Fake Certificate"), generated on the
-- first start and reused by every later start and by every process sharing this store.
-- Changes here never bump store_state.resource_version: they are not configuration.

CREATE TABLE gateway_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,              -- JSON
  updated_at TEXT NOT NULL
) STRICT;
