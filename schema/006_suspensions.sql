-- 006_suspensions: keys suspended for anomalous use (a runaway loop, a
-- request outside policy). A suspended key authenticates nothing until a
-- person approves its reinstatement; other keys and agents are untouched.
CREATE TABLE key_suspensions (
    key_id        TEXT    PRIMARY KEY REFERENCES agent_keys(key_id) ON DELETE CASCADE,
    suspended_at  INTEGER NOT NULL,
    reason        TEXT    NOT NULL
) STRICT;
