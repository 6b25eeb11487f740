-- 003_audit: the hash-chained, HMAC'd audit trail, and room for the audit key.

-- vault_keys gains the 'audit_mac' purpose. SQLite cannot alter a CHECK, so
-- the table is rebuilt with the same rows.
CREATE TABLE vault_keys_new (
    purpose     TEXT    PRIMARY KEY CHECK (purpose IN ('token_signing', 'audit_mac')),
    ciphertext  BLOB    NOT NULL CHECK (length(ciphertext) >= 29),
    created_at  INTEGER NOT NULL
) STRICT;
INSERT INTO vault_keys_new SELECT purpose, ciphertext, created_at FROM vault_keys;
DROP TABLE vault_keys;
ALTER TABLE vault_keys_new RENAME TO vault_keys;

-- One record per state change or access. Names, never values. Each record's
-- chain hash covers the previous record's chain hash and this record's fields;
-- its MAC (HMAC-SHA256 under the audit key, encrypted in vault_keys) means
-- someone who can write this file but lacks the passphrase cannot forge a
-- record or re-chain the ones after an edit.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    at_ms       INTEGER NOT NULL,
    -- 'operator' or 'agent:NAME'
    actor       TEXT    NOT NULL,
    -- the named key acting (agents), if any
    key_id      TEXT,
    action      TEXT    NOT NULL,
    -- what was acted on, by name (AGENT/NAME, a key name, ...); never a value
    target      TEXT,
    -- 'ok', 'denied:<code>' or 'error:<code>'
    outcome     TEXT    NOT NULL,
    request_id  TEXT,
    -- where the request came from: 'cli', a server peer address, ...
    origin      TEXT,
    chain       BLOB    NOT NULL CHECK (length(chain) = 32),
    mac         BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;
CREATE INDEX audit_log_key ON audit_log (key_id, at_ms);

-- The newest record's seq and chain hash, MAC'd, so deleting records from
-- the end of the log is detected too.
CREATE TABLE audit_head (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    seq         INTEGER NOT NULL,
    chain       BLOB    NOT NULL CHECK (length(chain) = 32),
    mac         BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;
