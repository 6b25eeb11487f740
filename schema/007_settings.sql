-- 007_settings: small operator settings (notification command or webhook).
-- Values are configuration, never secrets; SECURITY.md says not to put a
-- credential in them.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY CHECK (name IN ('notify.command', 'notify.webhook')),
    value  TEXT NOT NULL
) STRICT;
