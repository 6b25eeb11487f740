-- 008_row_tags (PostgreSQL): mirrors schema/008_row_tags.sql.
ALTER TABLE vault_header ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE vault_header ADD COLUMN row_tags BIGINT NOT NULL DEFAULT 0 CHECK (row_tags IN (0, 1));
ALTER TABLE agents ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE agent_keys ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE revoked_tokens ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE secrets ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE targets ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE secret_rotation ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE settings ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE audit_head ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
CREATE INDEX revoked_tokens_key ON revoked_tokens (key_id);
