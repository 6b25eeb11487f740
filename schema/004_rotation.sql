-- 004_rotation: where agents' keys and secrets live (targets), journaled
-- rotations, approvals a person must give, per-secret rotation commands, and
-- the fingerprints that let a scan recognise stored secrets without the passphrase.

-- Env files the vault rewrites when an agent's key or secrets rotate.
CREATE TABLE targets (
    target_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id    INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    -- absolute path of the env file
    path        TEXT    NOT NULL CHECK (substr(path, 1, 1) = '/'),
    -- the variable that holds the agent's named key in that file
    key_var     TEXT    NOT NULL DEFAULT 'VAULT_AGENT_KEY'
                CHECK (key_var NOT GLOB '*[^A-Za-z0-9_]*' AND key_var NOT GLOB '[0-9]*'),
    created_at  INTEGER NOT NULL,
    UNIQUE (agent_id, path)
) STRICT;

-- One row per rotation, advanced step by step; each step commits before the
-- next starts, so a crash resumes from the last committed step.
CREATE TABLE rotations (
    rotation_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL CHECK (kind IN ('key')),
    agent_id       INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    -- the key's name
    subject        TEXT    NOT NULL,
    old_key_id     TEXT    NOT NULL,
    new_key_id     TEXT,
    -- the successor key, AES-256-GCM under the DEK, kept only until the
    -- rotation finishes so a resumed rotation can still write it to targets
    pending_secret BLOB,
    -- pending: successor created; written: every target holds it;
    -- done: old key revoked; rolled_back: successor revoked, old key kept
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'written', 'done', 'rolled_back')),
    reason         TEXT    NOT NULL,
    error          TEXT,
    started_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX rotations_open ON rotations (state) WHERE state IN ('pending', 'written');

-- Per-secret rotation command: gets the old value on stdin, prints the new
-- one. 'approve' (default): runs only after `vault approve`; 'auto': at once.
CREATE TABLE secret_rotation (
    secret_id   INTEGER PRIMARY KEY REFERENCES secrets(secret_id) ON DELETE CASCADE,
    command     TEXT    NOT NULL,
    mode        TEXT    NOT NULL CHECK (mode IN ('approve', 'auto')),
    timeout_ms  INTEGER NOT NULL CHECK (timeout_ms BETWEEN 100 AND 600000)
) STRICT;

-- Draft-only actions waiting for a person.
CREATE TABLE approvals (
    approval_id  TEXT    PRIMARY KEY CHECK (length(approval_id) = 8),
    kind         TEXT    NOT NULL CHECK (kind IN ('rotate_secret', 'reinstate_key')),
    agent_id     INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    -- secret name or key id, by name; never a value
    subject      TEXT    NOT NULL,
    -- what happened and what approving will do, for the person deciding
    summary      TEXT    NOT NULL,
    state        TEXT    NOT NULL
                 CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'done', 'failed')),
    result       TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decided_at   INTEGER
) STRICT;

-- agent_keys gains the 'retiring' status: during a rotation the old key keeps
-- working (under its name) while the successor, already 'active', is written
-- to every target. Rebuilt because SQLite cannot alter a CHECK; the migration
-- runner turns foreign keys off around it, as SQLite's ALTER TABLE doc says.
CREATE TABLE agent_keys_new (
    key_id        TEXT    PRIMARY KEY
                  CHECK (length(key_id) = 16 AND key_id NOT GLOB '*[^0-9a-f]*'),
    name          TEXT    NOT NULL
                  CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    agent_id      INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    key_hash      BLOB    NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    status        TEXT    NOT NULL CHECK (status IN ('active', 'retiring', 'revoked')),
    epoch         INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
) STRICT;
INSERT INTO agent_keys_new SELECT * FROM agent_keys;
DROP TABLE agent_keys;
ALTER TABLE agent_keys_new RENAME TO agent_keys;
CREATE UNIQUE INDEX agent_keys_active_name ON agent_keys (name) WHERE status = 'active';
CREATE INDEX agent_keys_agent ON agent_keys (agent_id);

-- When a stored secret was found leaked (NULL: never).
ALTER TABLE secrets ADD COLUMN compromised_at INTEGER;
