-- 008_row_tags: every row that decides who may read what, or what runs, gets
-- a tag: HMAC-SHA256 under a key derived from the data key (vault-core
-- crypto/rowtag.rs), bound to the vault, the table and the row's id, and
-- checked on every read. NULL until the first unlock after this migration
-- computes them (the passphrase is needed), recorded in the audit trail.
ALTER TABLE vault_header ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
-- 1 once tags exist; bound into the wrapped DEK's associated data, so setting
-- it back to 0 (to have the next unlock re-tag a tampered state) fails to unlock
ALTER TABLE vault_header ADD COLUMN row_tags INTEGER NOT NULL DEFAULT 0 CHECK (row_tags IN (0, 1));
ALTER TABLE agents ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE agent_keys ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE revoked_tokens ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE secrets ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE targets ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE secret_rotation ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE settings ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
ALTER TABLE audit_head ADD COLUMN tag BLOB CHECK (tag IS NULL OR length(tag) = 32);
-- a key's tag covers how many revoked-token rows it has, so deleting one
-- (to bring a revoked token back) is detected; this keeps that count cheap
CREATE INDEX revoked_tokens_key ON revoked_tokens (key_id);
