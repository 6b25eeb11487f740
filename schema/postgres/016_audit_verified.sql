-- 016_audit_verified (PostgreSQL): mirrors schema/016_audit_verified.sql.
CREATE TABLE audit_verified (
    singleton       BIGINT  PRIMARY KEY CHECK (singleton = 1),
    through_seq     BIGINT  NOT NULL CHECK (through_seq >= 1),
    chain           BYTEA   NOT NULL CHECK (length(chain) = 32),
    verified_at_ms  BIGINT  NOT NULL,
    mac             BYTEA   NOT NULL CHECK (length(mac) = 32)
);

-- verifying is the operator's
ALTER TABLE audit_verified ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON audit_verified USING (vault_is_operator()) WITH CHECK (vault_is_operator());
