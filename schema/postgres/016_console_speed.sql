-- 016_console_speed (PostgreSQL): mirrors schema/016_console_speed.sql.
CREATE TABLE audit_verified (
    singleton       BIGINT  PRIMARY KEY CHECK (singleton = 1),
    through_seq     BIGINT  NOT NULL CHECK (through_seq >= 1),
    chain           BYTEA   NOT NULL CHECK (length(chain) = 32),
    verified_at_ms  BIGINT  NOT NULL,
    mac             BYTEA   NOT NULL CHECK (length(mac) = 32)
);

-- verifying is the operator's
ALTER TABLE audit_verified ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON audit_verified USING (vault_is_operator()) WITH CHECK (vault_is_operator());

-- The spend page's own grains; the triggers are PL/pgSQL and run under the writer's row-level security.
CREATE TABLE egress_usage_day_host (
    day                 BIGINT  NOT NULL,          -- unix ms of the UTC midnight starting the day
    host                TEXT    NOT NULL,
    model               TEXT    NOT NULL,          -- '' when the request named none
    requests            BIGINT  NOT NULL,
    estimated           BIGINT  NOT NULL,
    cut                 BIGINT  NOT NULL,
    input_tokens        BIGINT  NOT NULL,
    output_tokens       BIGINT  NOT NULL,
    cache_read_tokens   BIGINT  NOT NULL,
    cache_write_tokens  BIGINT  NOT NULL,
    bytes_up            BIGINT  NOT NULL,
    bytes_down          BIGINT  NOT NULL,
    PRIMARY KEY (day, host, model)
);

CREATE TABLE egress_usage_month_key (
    month               BIGINT  NOT NULL,          -- unix ms of the UTC midnight starting the month
    agent               TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    requests            BIGINT  NOT NULL,
    estimated           BIGINT  NOT NULL,
    cut                 BIGINT  NOT NULL,
    input_tokens        BIGINT  NOT NULL,
    output_tokens       BIGINT  NOT NULL,
    cache_read_tokens   BIGINT  NOT NULL,
    cache_write_tokens  BIGINT  NOT NULL,
    bytes_up            BIGINT  NOT NULL,
    bytes_down          BIGINT  NOT NULL,
    PRIMARY KEY (month, agent, key_id, model)
);

ALTER TABLE egress_usage_day_host ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON egress_usage_day_host USING (vault_is_operator()) WITH CHECK (vault_is_operator());
ALTER TABLE egress_usage_month_key ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON egress_usage_month_key USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON egress_usage_month_key USING (agent = vault_agent()) WITH CHECK (agent = vault_agent());

INSERT INTO egress_usage_day_host
SELECT (u.at / 86400000) * 86400000, host, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage u
GROUP BY 1, 2, 3;

INSERT INTO egress_usage_month_key
SELECT (extract(epoch FROM date_trunc('month', to_timestamp(u.at / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint, agent, key_id, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage u
GROUP BY 1, 2, 3, 4;

CREATE FUNCTION egress_usage_rollups_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev TEXT := coalesce(current_setting('vault.operator', true), '');
BEGIN
    -- the per-host rollup holds no agent's rows: written as the operator (as
    -- vault_agent_of_key_hash reads), only from the row the writer's policy passed
    PERFORM set_config('vault.operator', 'on', true);
    INSERT INTO egress_usage_day_host AS d VALUES (
        (NEW.at / 86400000) * 86400000, NEW.host, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (day, host, model) DO UPDATE SET
        requests = d.requests + 1,
        estimated = d.estimated + excluded.estimated,
        cut = d.cut + excluded.cut,
        input_tokens = d.input_tokens + excluded.input_tokens,
        output_tokens = d.output_tokens + excluded.output_tokens,
        cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
        bytes_up = d.bytes_up + excluded.bytes_up,
        bytes_down = d.bytes_down + excluded.bytes_down;
    PERFORM set_config('vault.operator', prev, true);
    INSERT INTO egress_usage_month_key AS m VALUES (
        (extract(epoch FROM date_trunc('month', to_timestamp(NEW.at / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint, NEW.agent, NEW.key_id, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (month, agent, key_id, model) DO UPDATE SET
        requests = m.requests + 1,
        estimated = m.estimated + excluded.estimated,
        cut = m.cut + excluded.cut,
        input_tokens = m.input_tokens + excluded.input_tokens,
        output_tokens = m.output_tokens + excluded.output_tokens,
        cache_read_tokens = m.cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = m.cache_write_tokens + excluded.cache_write_tokens,
        bytes_up = m.bytes_up + excluded.bytes_up,
        bytes_down = m.bytes_down + excluded.bytes_down;
    RETURN NULL;
END $$;
CREATE TRIGGER egress_usage_rollups_add AFTER INSERT ON egress_usage
    FOR EACH ROW EXECUTE FUNCTION egress_usage_rollups_add();

CREATE FUNCTION egress_usage_rollups_remove() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev TEXT := coalesce(current_setting('vault.operator', true), '');
BEGIN
    -- the per-host rollup holds no agent's rows: written as the operator (as
    -- vault_agent_of_key_hash reads), only from the row the writer's policy passed
    PERFORM set_config('vault.operator', 'on', true);
    UPDATE egress_usage_day_host SET
        requests = requests - 1,
        estimated = estimated - OLD.estimated,
        cut = cut - OLD.cut,
        input_tokens = input_tokens - OLD.input_tokens,
        output_tokens = output_tokens - OLD.output_tokens,
        cache_read_tokens = cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens,
        bytes_up = bytes_up - OLD.bytes_up,
        bytes_down = bytes_down - OLD.bytes_down
    WHERE day = (OLD.at / 86400000) * 86400000 AND host = OLD.host AND model = coalesce(OLD.model, '');
    DELETE FROM egress_usage_day_host WHERE day = (OLD.at / 86400000) * 86400000 AND host = OLD.host AND model = coalesce(OLD.model, '') AND requests <= 0;
    PERFORM set_config('vault.operator', prev, true);
    UPDATE egress_usage_month_key SET
        requests = requests - 1,
        estimated = estimated - OLD.estimated,
        cut = cut - OLD.cut,
        input_tokens = input_tokens - OLD.input_tokens,
        output_tokens = output_tokens - OLD.output_tokens,
        cache_read_tokens = cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens,
        bytes_up = bytes_up - OLD.bytes_up,
        bytes_down = bytes_down - OLD.bytes_down
    WHERE month = (extract(epoch FROM date_trunc('month', to_timestamp(OLD.at / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint AND agent = OLD.agent AND key_id = OLD.key_id AND model = coalesce(OLD.model, '');
    DELETE FROM egress_usage_month_key WHERE month = (extract(epoch FROM date_trunc('month', to_timestamp(OLD.at / 1000) AT TIME ZONE 'UTC')) * 1000)::bigint AND agent = OLD.agent AND key_id = OLD.key_id AND model = coalesce(OLD.model, '') AND requests <= 0;
    RETURN NULL;
END $$;
CREATE TRIGGER egress_usage_rollups_remove AFTER DELETE ON egress_usage
    FOR EACH ROW EXECUTE FUNCTION egress_usage_rollups_remove();
