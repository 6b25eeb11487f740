-- 005_fingerprints (PostgreSQL): mirrors schema/005_fingerprints.sql.

CREATE TABLE scan_key (
    singleton   BIGINT  PRIMARY KEY CHECK (singleton = 1),
    key         BYTEA   NOT NULL CHECK (length(key) = 32)
);

CREATE TABLE secret_fingerprints (
    secret_id    BIGINT  PRIMARY KEY REFERENCES secrets(secret_id) ON DELETE CASCADE,
    fingerprint  BYTEA   NOT NULL CHECK (length(fingerprint) = 32),
    value_len    BIGINT  NOT NULL CHECK (value_len > 0)
);

ALTER TABLE scan_key ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY request ON scan_key USING (vault_is_request()) WITH CHECK (vault_is_request());

ALTER TABLE secret_fingerprints ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON secret_fingerprints USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON secret_fingerprints
    USING (secret_id IN (SELECT s.secret_id FROM secrets s WHERE s.agent_id = vault_agent_id()))
    WITH CHECK (secret_id IN (SELECT s.secret_id FROM secrets s WHERE s.agent_id = vault_agent_id()));
