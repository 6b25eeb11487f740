-- 013_console (PostgreSQL): mirrors schema/013_console.sql.
CREATE TABLE console_sessions (
    id_hash     BYTEA   PRIMARY KEY CHECK (length(id_hash) = 32),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    tag         BYTEA   NOT NULL CHECK (length(tag) = 32)
);

CREATE INDEX audit_log_action ON audit_log (action, seq, outcome, key_id);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE INDEX egress_usage_console ON egress_usage (at, agent, key_id, host, model,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, estimated, cut,
    bytes_up, bytes_down);

-- the console is the operator's
ALTER TABLE console_sessions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON console_sessions USING (vault_is_operator()) WITH CHECK (vault_is_operator());
