-- 009_broker_ca: vault_keys gains the 'broker_ca' purpose, the brokered-egress
-- CA's private key (and its certificate), AES-256-GCM under the DEK and bound to
-- its row like the other internal keys. SQLite cannot alter a CHECK, so the
-- table is rebuilt with the same rows.
CREATE TABLE vault_keys_new (
    purpose     TEXT    PRIMARY KEY CHECK (purpose IN ('token_signing', 'audit_mac', 'broker_ca')),
    ciphertext  BLOB    NOT NULL CHECK (length(ciphertext) >= 29),
    created_at  INTEGER NOT NULL
) STRICT;
INSERT INTO vault_keys_new SELECT purpose, ciphertext, created_at FROM vault_keys;
DROP TABLE vault_keys;
ALTER TABLE vault_keys_new RENAME TO vault_keys;
