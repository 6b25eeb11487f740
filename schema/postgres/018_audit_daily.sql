-- 018_audit_daily (PostgreSQL): mirrors schema/018_audit_daily.sql; the
-- triggers are PL/pgSQL and run under the writer's row-level security, which
-- matches audit_log's: the operator, or an agent for its own records.
CREATE TABLE audit_daily_ok (
    day      BIGINT  NOT NULL,
    action   TEXT    NOT NULL,
    key_id   TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    records  BIGINT  NOT NULL,
    PRIMARY KEY (day, action, key_id, actor)
);

ALTER TABLE audit_daily_ok ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON audit_daily_ok USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON audit_daily_ok USING (actor = 'agent:' || vault_agent())
    WITH CHECK (actor = 'agent:' || vault_agent());

INSERT INTO audit_daily_ok
SELECT (at_ms / 86400000) * 86400000, action, key_id, actor, count(*)
FROM audit_log
WHERE outcome = 'ok' AND key_id IS NOT NULL
GROUP BY 1, 2, 3, 4;

CREATE FUNCTION audit_daily_ok_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcome = 'ok' AND NEW.key_id IS NOT NULL THEN
        INSERT INTO audit_daily_ok AS d VALUES (
            (NEW.at_ms / 86400000) * 86400000, NEW.action, NEW.key_id, NEW.actor, 1)
        ON CONFLICT (day, action, key_id, actor) DO UPDATE SET records = d.records + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_daily_ok_add AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_daily_ok_add();

CREATE FUNCTION audit_daily_ok_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.outcome = 'ok' AND OLD.key_id IS NOT NULL THEN
        UPDATE audit_daily_ok SET records = records - 1
        WHERE day = (OLD.at_ms / 86400000) * 86400000 AND action = OLD.action
          AND key_id = OLD.key_id AND actor = OLD.actor;
        DELETE FROM audit_daily_ok
        WHERE day = (OLD.at_ms / 86400000) * 86400000 AND action = OLD.action
          AND key_id = OLD.key_id AND actor = OLD.actor AND records <= 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_daily_ok_remove AFTER DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_daily_ok_remove();
