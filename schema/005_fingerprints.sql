-- 005_fingerprints: what lets `vault scan` recognise a stored secret in a
-- transcript or a commit without the passphrase and without plaintext:
-- HMAC-SHA256 of each current value under a fingerprint key kept in clear
-- (SECURITY.md says what that reveals, and to whom).

CREATE TABLE scan_key (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    key         BLOB    NOT NULL CHECK (length(key) = 32)
) STRICT;

CREATE TABLE secret_fingerprints (
    secret_id    INTEGER PRIMARY KEY REFERENCES secrets(secret_id) ON DELETE CASCADE,
    -- HMAC-SHA256(scan key, current value)
    fingerprint  BLOB    NOT NULL CHECK (length(fingerprint) = 32),
    -- the value's length in bytes: the scanner only hashes candidates this long
    value_len    INTEGER NOT NULL CHECK (value_len > 0)
) STRICT;
