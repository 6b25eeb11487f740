-- 015_audit_prune: the audit trail can be pruned from its oldest end and still
-- verify. What was removed is summed up by one checkpoint: every record up to
-- through_seq is gone, and the first kept record chains from `chain` (the
-- removed last record's chain hash, which covers everything before it). The
-- MAC (HMAC-SHA256 under the audit key) means someone holding only the file
-- cannot move the checkpoint to hide deleted records; deleting it leaves a gap
-- at the start that `vault audit verify` names.
CREATE TABLE audit_pruned (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    through_seq    INTEGER NOT NULL CHECK (through_seq >= 1),
    chain          BLOB    NOT NULL CHECK (length(chain) = 32),
    -- the removed last record's time, and when the pruning was done
    through_at_ms  INTEGER NOT NULL,
    pruned_at_ms   INTEGER NOT NULL,
    mac            BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

-- settings gains 'audit.retention' (the default age `vault audit prune`
-- removes). SQLite cannot alter a CHECK, so the table is rebuilt with its rows
-- (their row tags cover name and value only, so they stay valid).
CREATE TABLE settings_new (
    name   TEXT PRIMARY KEY CHECK (name IN ('notify.command', 'notify.webhook', 'audit.retention')),
    value  TEXT NOT NULL,
    tag    BLOB CHECK (tag IS NULL OR length(tag) = 32)
) STRICT;
INSERT INTO settings_new (name, value, tag) SELECT name, value, tag FROM settings;
DROP TABLE settings;
ALTER TABLE settings_new RENAME TO settings;
