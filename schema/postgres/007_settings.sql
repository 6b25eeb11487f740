-- 007_settings (PostgreSQL): mirrors schema/007_settings.sql.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY CONSTRAINT settings_name_check CHECK (name IN ('notify.command', 'notify.webhook')),
    value  TEXT NOT NULL
);

-- read on the agent's path too (a suspension notifies)
ALTER TABLE settings ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY request ON settings USING (vault_is_request()) WITH CHECK (vault_is_request());
