-- What the data plane needs to re-read only what changed since its last snapshot: the rows whose
-- resource_version is above the one it read (an index, so that costs the changed rows, not a
-- scan), and the objects deleted since (a row here per delete, with the version the delete
-- bumped the store to). Kept for the last 100,000 versions; a reader further behind reads
-- everything again.
CREATE INDEX objects_by_resource_version ON objects (resource_version);

CREATE TABLE object_deletions (
  resource_version INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  namespace TEXT NOT NULL,
  name TEXT NOT NULL
) STRICT;
