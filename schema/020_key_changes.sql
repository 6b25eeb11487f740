-- 020_key_changes: one counter every change to a key's state moves (issue
-- 20). A server checks tokens against an in-memory snapshot of key states and
-- revoked token ids; on PostgreSQL, a revocation committed by another process
-- reached it only through LISTEN/NOTIFY, which arrives after the commit, so a
-- request sent right after `vault keys revoke` could still pass. The writer
-- moves `n` in the transaction that changes the key (store::keys::announce),
-- and the server reads it before each token check: visible exactly when the
-- change is. A stamp, never a decision, so untagged: a writer that could
-- forge it could rewrite the keys themselves.
CREATE TABLE key_changes (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    n          INTEGER NOT NULL CHECK (n >= 0)
) STRICT;

INSERT INTO key_changes VALUES (1, 0);
