-- 015_audit_prune (PostgreSQL): mirrors schema/015_audit_prune.sql; settings'
-- CHECK is altered in place.
CREATE TABLE audit_pruned (
    singleton      BIGINT  PRIMARY KEY CHECK (singleton = 1),
    through_seq    BIGINT  NOT NULL CHECK (through_seq >= 1),
    chain          BYTEA   NOT NULL CHECK (length(chain) = 32),
    through_at_ms  BIGINT  NOT NULL,
    pruned_at_ms   BIGINT  NOT NULL,
    mac            BYTEA   NOT NULL CHECK (length(mac) = 32)
);

ALTER TABLE settings DROP CONSTRAINT settings_name_check,
    ADD CONSTRAINT settings_name_check
        CHECK (name IN ('notify.command', 'notify.webhook', 'audit.retention'));

-- pruning and verifying are the operator's
ALTER TABLE audit_pruned ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON audit_pruned USING (vault_is_operator()) WITH CHECK (vault_is_operator());
