-- 016_audit_verified: where the last complete walk of the audit trail ended
-- (issue 17). The console verifies the chain from here on rather than from the
-- first record, so its audit page stays fast on a long trail and a server
-- restart does not start over. Written only when a walk from the trail's start
-- finishes intact, and deleted when any check finds the chain broken. The MAC
-- (HMAC-SHA256 under the audit key) means someone holding only the file cannot
-- move it forward over records they edited; deleting it only makes the next
-- check walk everything again.
CREATE TABLE audit_verified (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    through_seq     INTEGER NOT NULL CHECK (through_seq >= 1),
    chain           BLOB    NOT NULL CHECK (length(chain) = 32),
    -- when that walk finished (Unix ms)
    verified_at_ms  INTEGER NOT NULL,
    mac             BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;
