-- 003_audit (PostgreSQL): mirrors schema/003_audit.sql. PostgreSQL alters a
-- CHECK in place, so vault_keys is not rebuilt.

ALTER TABLE vault_keys DROP CONSTRAINT vault_keys_purpose_check,
    ADD CONSTRAINT vault_keys_purpose_check CHECK (purpose IN ('token_signing', 'audit_mac'));

CREATE TABLE audit_log (
    seq         BIGINT  PRIMARY KEY CHECK (seq >= 1),
    at_ms       BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    key_id      TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    outcome     TEXT    NOT NULL,
    request_id  TEXT,
    origin      TEXT,
    chain       BYTEA   NOT NULL CHECK (length(chain) = 32),
    mac         BYTEA   NOT NULL CHECK (length(mac) = 32)
);
CREATE INDEX audit_log_key ON audit_log (key_id, at_ms);

CREATE TABLE audit_head (
    singleton   BIGINT  PRIMARY KEY CHECK (singleton = 1),
    seq         BIGINT  NOT NULL,
    chain       BYTEA   NOT NULL CHECK (length(chain) = 32),
    mac         BYTEA   NOT NULL CHECK (length(mac) = 32)
);

-- an agent reads and appends its own records; the chain's head is shared
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON audit_log USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON audit_log USING (actor = 'agent:' || vault_agent())
    WITH CHECK (actor = 'agent:' || vault_agent());

ALTER TABLE audit_head ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY request ON audit_head USING (vault_is_request()) WITH CHECK (vault_is_request());
