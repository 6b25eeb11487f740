-- 002_keys_tokens: named agent keys, token revocation, and the vault's own
-- internal keys (the token-signing key), encrypted under the DEK.

-- Keys the vault uses itself, each AES-256-GCM under the DEK with the purpose
-- in its associated data. Created on first use.
CREATE TABLE vault_keys (
    purpose     TEXT    PRIMARY KEY CHECK (purpose IN ('token_signing')),
    ciphertext  BLOB    NOT NULL CHECK (length(ciphertext) >= 29),
    created_at  INTEGER NOT NULL
) STRICT;

-- Named keys issued to agents. Only the SHA-256 of the key is kept: the key
-- itself is shown once (or written into the agent's env file) and never stored.
CREATE TABLE agent_keys (
    -- random, public id (16 hex chars); tokens carry it, logs show it
    key_id        TEXT    PRIMARY KEY
                  CHECK (length(key_id) = 16 AND key_id NOT GLOB '*[^0-9a-f]*'),
    name          TEXT    NOT NULL
                  CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    agent_id      INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    key_hash      BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    status        TEXT    NOT NULL CHECK (status IN ('active', 'revoked')),
    -- tokens carry the epoch they were minted under; bumping it revokes them
    -- all at once without touching a row per token
    epoch         INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
) STRICT;

-- One active key per name; revoked keys keep their row for the record.
CREATE UNIQUE INDEX agent_keys_active_name ON agent_keys (name) WHERE status = 'active';
CREATE INDEX agent_keys_agent ON agent_keys (agent_id);

-- Tokens revoked one by one before they expire. Rows past expires_at are
-- useless (the token is dead anyway) and are pruned on write.
CREATE TABLE revoked_tokens (
    token_id    TEXT    PRIMARY KEY
                CHECK (length(token_id) = 16 AND token_id NOT GLOB '*[^0-9a-f]*'),
    key_id      TEXT    NOT NULL REFERENCES agent_keys(key_id) ON DELETE CASCADE,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL
) STRICT;
