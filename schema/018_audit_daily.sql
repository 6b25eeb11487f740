-- 018_audit_daily: per-day counts of successful audit records by action and
-- key (issue 17). The console's overview and spend pages show tokens minted
-- today per agent; counting them from audit_log read every token.mint record
-- of the day (63 ms with 33,000 mints). This holds one row per (UTC day,
-- action, key, actor), kept by triggers on audit_log in the writer's
-- transaction, so every writer keeps it right. A count shown, never a
-- decision: not authorization state, so untagged; the chain and its MACs stay
-- on audit_log alone. Pruned records leave it, like 014's rollup.
CREATE TABLE audit_daily_ok (
    day      INTEGER NOT NULL,          -- unix ms of the UTC midnight starting the day
    action   TEXT    NOT NULL,
    key_id   TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    records  INTEGER NOT NULL,
    PRIMARY KEY (day, action, key_id, actor)
) STRICT, WITHOUT ROWID;

INSERT INTO audit_daily_ok
SELECT (at_ms / 86400000) * 86400000, action, key_id, actor, count(*)
FROM audit_log
WHERE outcome = 'ok' AND key_id IS NOT NULL
GROUP BY 1, 2, 3, 4;

CREATE TRIGGER audit_daily_ok_add AFTER INSERT ON audit_log
WHEN NEW.outcome = 'ok' AND NEW.key_id IS NOT NULL
BEGIN
    INSERT INTO audit_daily_ok VALUES (
        (NEW.at_ms / 86400000) * 86400000, NEW.action, NEW.key_id, NEW.actor, 1)
    ON CONFLICT (day, action, key_id, actor) DO UPDATE SET records = records + 1;
END;

CREATE TRIGGER audit_daily_ok_remove AFTER DELETE ON audit_log
WHEN OLD.outcome = 'ok' AND OLD.key_id IS NOT NULL
BEGIN
    UPDATE audit_daily_ok SET records = records - 1
    WHERE day = (OLD.at_ms / 86400000) * 86400000 AND action = OLD.action
      AND key_id = OLD.key_id AND actor = OLD.actor;
    DELETE FROM audit_daily_ok
    WHERE day = (OLD.at_ms / 86400000) * 86400000 AND action = OLD.action
      AND key_id = OLD.key_id AND actor = OLD.actor AND records <= 0;
END;
