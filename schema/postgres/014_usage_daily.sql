-- 014_usage_daily (PostgreSQL): mirrors schema/014_usage_daily.sql; the
-- triggers are PL/pgSQL and run under the writer's row-level security.
CREATE TABLE egress_usage_daily (
    day                 BIGINT  NOT NULL,
    agent               TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    host                TEXT    NOT NULL,
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
    PRIMARY KEY (day, agent, key_id, host, model)
);

ALTER TABLE egress_usage_daily ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY operator ON egress_usage_daily USING (vault_is_operator()) WITH CHECK (vault_is_operator());
CREATE POLICY own ON egress_usage_daily USING (agent = vault_agent()) WITH CHECK (agent = vault_agent());

INSERT INTO egress_usage_daily
SELECT (at / 86400000) * 86400000, agent, key_id, host, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage
GROUP BY 1, 2, 3, 4, 5;

CREATE FUNCTION egress_usage_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO egress_usage_daily AS d VALUES (
        (NEW.at / 86400000) * 86400000, NEW.agent, NEW.key_id, NEW.host, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (day, agent, key_id, host, model) DO UPDATE SET
        requests = d.requests + 1,
        estimated = d.estimated + excluded.estimated,
        cut = d.cut + excluded.cut,
        input_tokens = d.input_tokens + excluded.input_tokens,
        output_tokens = d.output_tokens + excluded.output_tokens,
        cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
        bytes_up = d.bytes_up + excluded.bytes_up,
        bytes_down = d.bytes_down + excluded.bytes_down;
    RETURN NULL;
END $$;
CREATE TRIGGER egress_usage_daily_add AFTER INSERT ON egress_usage
    FOR EACH ROW EXECUTE FUNCTION egress_usage_daily_add();

CREATE FUNCTION egress_usage_daily_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE egress_usage_daily SET
        requests = requests - 1,
        estimated = estimated - OLD.estimated,
        cut = cut - OLD.cut,
        input_tokens = input_tokens - OLD.input_tokens,
        output_tokens = output_tokens - OLD.output_tokens,
        cache_read_tokens = cache_read_tokens - OLD.cache_read_tokens,
        cache_write_tokens = cache_write_tokens - OLD.cache_write_tokens,
        bytes_up = bytes_up - OLD.bytes_up,
        bytes_down = bytes_down - OLD.bytes_down
    WHERE day = (OLD.at / 86400000) * 86400000 AND agent = OLD.agent AND key_id = OLD.key_id
      AND host = OLD.host AND model = coalesce(OLD.model, '');
    DELETE FROM egress_usage_daily
    WHERE day = (OLD.at / 86400000) * 86400000 AND agent = OLD.agent AND key_id = OLD.key_id
      AND host = OLD.host AND model = coalesce(OLD.model, '') AND requests <= 0;
    RETURN NULL;
END $$;
CREATE TRIGGER egress_usage_daily_remove AFTER DELETE ON egress_usage
    FOR EACH ROW EXECUTE FUNCTION egress_usage_daily_remove();
