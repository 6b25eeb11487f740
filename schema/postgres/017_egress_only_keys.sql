-- 017_egress_only_keys (PostgreSQL): mirrors schema/017_egress_only_keys.sql;
-- agent_keys keeps its row-level security policies and grants.
ALTER TABLE agent_keys ADD COLUMN egress_only BIGINT NOT NULL DEFAULT 0 CHECK (egress_only IN (0, 1));
