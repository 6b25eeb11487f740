-- 001_init: the vault header, agents, secrets and their versions.
-- Applied once inside one transaction; PRAGMA user_version records it.
-- Names are stored in clear (SECURITY.md says what that reveals); values never are.

-- One row: how to unlock this vault. Everything a wrong or edited header could
-- weaken (KDF parameters, salt, DEK id) is bound into the wrapped DEK's associated
-- data, so editing any of it makes unlocking fail rather than silently weaker.
CREATE TABLE vault_header (
    singleton        INTEGER PRIMARY KEY CHECK (singleton = 1),
    -- random id of this vault, part of every ciphertext's associated data so a
    -- ciphertext copied from another vault never decrypts here
    vault_id         BLOB    NOT NULL CHECK (length(vault_id) = 16),
    format_version   INTEGER NOT NULL CHECK (format_version = 1),
    kdf_algorithm    TEXT    NOT NULL CHECK (kdf_algorithm = 'argon2id'),
    kdf_memory_kib   INTEGER NOT NULL CHECK (kdf_memory_kib > 0),
    kdf_iterations   INTEGER NOT NULL CHECK (kdf_iterations > 0),
    kdf_lanes        INTEGER NOT NULL CHECK (kdf_lanes > 0),
    kdf_salt         BLOB    NOT NULL CHECK (length(kdf_salt) = 16),
    -- the data-encryption key, AES-256-GCM-wrapped under the passphrase KEK
    dek_id           BLOB    NOT NULL CHECK (length(dek_id) = 16),
    wrapped_dek      BLOB    NOT NULL,
    -- encryptions done under this DEK: random 96-bit nonces are safe only up to
    -- 2^32 per key (NIST SP 800-38D s8.3); rekey is forced well before
    dek_encryptions  INTEGER NOT NULL DEFAULT 0 CHECK (dek_encryptions >= 0),
    created_at       INTEGER NOT NULL
) STRICT;

-- A principal: owns secrets, holds keys, has a policy.
CREATE TABLE agents (
    -- AUTOINCREMENT: ids are never reused, so a removed agent's rows can't be revived
    agent_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE
                CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^a-z0-9-]*'),
    -- the agent's policy as canonical JSON (parsed and checked in vault-core)
    policy      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL
) STRICT;

-- A named value owned by one agent; the values live in secret_versions.
CREATE TABLE secrets (
    -- AUTOINCREMENT: the id is part of each version's associated data, and must
    -- never be reused by a later secret of the same name
    secret_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id         INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    name             TEXT    NOT NULL
                     CHECK (length(name) BETWEEN 1 AND 128
                            AND name NOT GLOB '*[^A-Za-z0-9_]*' AND name NOT GLOB '[0-9]*'),
    current_version  INTEGER NOT NULL CHECK (current_version >= 1),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (agent_id, name)
) STRICT;

-- Every value a secret has had, encrypted. Old versions stay so a rotation never
-- loses the value it replaced; `vault history` lists them without values.
CREATE TABLE secret_versions (
    secret_id   INTEGER NOT NULL REFERENCES secrets(secret_id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 1),
    -- version byte || 96-bit nonce || AES-256-GCM ciphertext || 128-bit tag
    ciphertext  BLOB    NOT NULL CHECK (length(ciphertext) >= 29),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (secret_id, version)
) STRICT;
