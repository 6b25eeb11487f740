-- 013_console: the web console (issue 17). Login sessions, and the indexes
-- its pages query the audit trail by.

-- One row per signed-in browser. The cookie's value is never stored: only
-- its SHA-256 (to find the row) and a row tag under the data key over that
-- hash and the expiry, so someone who can write this file but lacks the
-- passphrase can neither plant a session nor extend one. A tag that does not
-- verify (a forged row, or any row after `vault rekey`) is no session.
CREATE TABLE console_sessions (
    id_hash     BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    tag         BLOB    NOT NULL CHECK (length(tag) = 32)
) STRICT;

-- The leaks page and the audit page filtered by action (newest first, by
-- seq), and the overview's tokens minted today per key (one action from
-- today's first seq; outcome and key_id in the index, so counting reads
-- only the index).
CREATE INDEX audit_log_action ON audit_log (action, seq, outcome, key_id);
-- The audit page filtered by agent, newest first.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

-- The console's spend page sums a month of brokered requests by day, key,
-- host and model: this index holds every column those sums read, so they
-- are read from it in time order without touching the table's rows
-- (schema 011's rows are written in batches off the request path).
CREATE INDEX egress_usage_console ON egress_usage (at, agent, key_id, host, model,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, estimated, cut,
    bytes_up, bytes_down);
