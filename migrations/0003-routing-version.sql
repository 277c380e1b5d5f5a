-- A second counter beside resource_version: bumped only by writes that can change what the data
-- plane serves (spec, data, annotations; not labels, not IngressClass objects). A follower that
-- sees resource_version move but routing_version stay marks the version served without a compile.
ALTER TABLE store_state ADD COLUMN routing_version INTEGER NOT NULL DEFAULT 0;
