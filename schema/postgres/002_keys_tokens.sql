-- 002_keys_tokens (PostgreSQL): mirrors schema/002_keys_tokens.sql.

CREATE TABLE vault_keys (
    purpose     TEXT    PRIMARY KEY CONSTRAINT vault_keys_purpose_check CHECK (purpose IN ('token_signing')),
    ciphertext  BYTEA   NOT NULL CHECK (length(ciphertext) >= 29),
    created_at  BIGINT  NOT NULL
);

CREATE TABLE agent_keys (
    key_id        TEXT    PRIMARY KEY
                  CHECK (length(key_id) = 16 AND key_id ~ '^[0-9a-f]*$'),
    name          TEXT    NOT NULL
                  CHECK (length(name) BETWEEN 1 AND 64 AND name ~ '^[a-z0-9-]*$'),
    agent_id      BIGINT  NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    key_hash      BYTEA   NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    status        TEXT    NOT NULL CONSTRAINT agent_keys_status_check CHECK (status IN ('active', 'revoked')),
    epoch         BIGINT  NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE UNIQUE INDEX agent_keys_active_name ON agent_keys (name) WHERE status = 'active';
CREATE INDEX agent_keys_agent ON agent_keys (agent_id);

CREATE TABLE revoked_tokens (
    token_id    TEXT    PRIMARY KEY
                CHECK (length(token_id) = 16 AND token_id ~ '^[0-9a-f]*$'),
    key_id      TEXT    NOT NULL REFERENCES agent_keys(key_id) ON DELETE CASCADE,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT  NOT NULL
);

-- the vault's own keys are used on every request (token signing)
ALTER TABLE vault_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY request ON vault_keys USING (vault_is_request()) WITH CHECK (vault_is_request());

ALTER TABLE agent_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON agent_keys USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON agent_keys USING (agent_id = vault_agent_id()) WITH CHECK (agent_id = vault_agent_id());

ALTER TABLE revoked_tokens ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON revoked_tokens USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON revoked_tokens
    USING (key_id IN (SELECT k.key_id FROM agent_keys k WHERE k.agent_id = vault_agent_id()))
    WITH CHECK (key_id IN (SELECT k.key_id FROM agent_keys k WHERE k.agent_id = vault_agent_id()));

-- Authentication runs before anyone is known to act: whose is this named key
-- (by its SHA-256) or this key id (a token names it)? Each function answers
-- one exact match with the agent's name and nothing else; the request then
-- runs scoped to that agent. The operator setting is put back before each
-- returns (and an error rolls it back with the transaction).
CREATE FUNCTION vault_agent_of_key_hash(hash BYTEA) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    prev TEXT := coalesce(current_setting('vault.operator', true), '');
    who  TEXT;
BEGIN
    PERFORM set_config('vault.operator', 'on', true);
    SELECT a.name INTO who FROM agent_keys k JOIN agents a ON a.agent_id = k.agent_id
        WHERE k.key_hash = hash;
    PERFORM set_config('vault.operator', prev, true);
    RETURN who;
END $$;
CREATE FUNCTION vault_agent_of_key_id(id TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    prev TEXT := coalesce(current_setting('vault.operator', true), '');
    who  TEXT;
BEGIN
    PERFORM set_config('vault.operator', 'on', true);
    SELECT a.name INTO who FROM agent_keys k JOIN agents a ON a.agent_id = k.agent_id
        WHERE k.key_id = id;
    PERFORM set_config('vault.operator', prev, true);
    RETURN who;
END $$;
