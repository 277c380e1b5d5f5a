-- Which write made each version: a random id per commit. A node keeps the id of the version its
-- mirror holds; if PostgreSQL's id for that version differs (the store was restored from an older
-- backup and written again past the node's version) or is gone, the node copies the store whole
-- instead of applying newer versions on top of a history that is not PostgreSQL's.
CREATE TABLE commit_history (
  resource_version bigint PRIMARY KEY,
  commit_id text NOT NULL
);
