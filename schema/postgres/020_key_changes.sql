-- 020_key_changes (PostgreSQL): mirrors schema/020_key_changes.sql. The
-- counter a server reads before each token check, so a key revoked or
-- suspended by another process or server is refused at the next request,
-- not when the notification arrives.
CREATE TABLE key_changes (
    singleton  BIGINT  PRIMARY KEY CHECK (singleton = 1),
    n          BIGINT  NOT NULL CHECK (n >= 0)
);

INSERT INTO key_changes VALUES (1, 0);

-- moved by any transaction that changes a key, read on every request
ALTER TABLE key_changes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY request ON key_changes USING (vault_is_request()) WITH CHECK (vault_is_request());
