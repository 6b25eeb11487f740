-- 012_egress_holds: draft-only egress (issue 16). An `[[egress]]` rule with
-- `approval = true` holds each matching request in the server that received
-- it and opens an approval of the new kind 'egress_request'; the request is
-- sent once if a person approves, refused otherwise. Approvals gain a row tag
-- (crypto/rowtag.rs): for 'egress_request' the server tags the row it opens
-- and `vault approve` checks that tag and tags its decision, so neither the
-- summary a person approves nor an 'approved' state can be written into
-- vault.db without the passphrase. Rebuilt because SQLite cannot alter a
-- CHECK; nothing references approvals.
CREATE TABLE approvals_new (
    approval_id  TEXT    PRIMARY KEY CHECK (length(approval_id) = 8),
    kind         TEXT    NOT NULL
                 CHECK (kind IN ('rotate_secret', 'reinstate_key', 'egress_request')),
    agent_id     INTEGER NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    -- secret name, key id, or METHOD host:port/path of a held request; never a value
    subject      TEXT    NOT NULL,
    -- what happened and what approving will do, for the person deciding
    summary      TEXT    NOT NULL,
    state        TEXT    NOT NULL
                 CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'done', 'failed')),
    result       TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decided_at   INTEGER,
    tag          BLOB    CHECK (tag IS NULL OR length(tag) = 32)
) STRICT;
INSERT INTO approvals_new (approval_id, kind, agent_id, subject, summary, state, result,
                           created_at, expires_at, decided_at)
    SELECT approval_id, kind, agent_id, subject, summary, state, result,
           created_at, expires_at, decided_at FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_open ON approvals (kind, state) WHERE state IN ('pending', 'approved');
