-- 006_suspensions (PostgreSQL): mirrors schema/006_suspensions.sql.
CREATE TABLE key_suspensions (
    key_id        TEXT    PRIMARY KEY REFERENCES agent_keys(key_id) ON DELETE CASCADE,
    suspended_at  BIGINT  NOT NULL,
    reason        TEXT    NOT NULL
);

ALTER TABLE key_suspensions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON key_suspensions USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON key_suspensions
    USING (key_id IN (SELECT k.key_id FROM agent_keys k WHERE k.agent_id = vault_agent_id()))
    WITH CHECK (key_id IN (SELECT k.key_id FROM agent_keys k WHERE k.agent_id = vault_agent_id()));
