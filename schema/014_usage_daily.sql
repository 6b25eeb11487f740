-- 014_usage_daily: a daily rollup of egress_usage (issue 17). The console's
-- 30-day spend view, its overview's spend today and this month, and its
-- by-host table sum whole UTC days; summing a month of per-request rows
-- took a quarter of a second with a year of usage, this reads one row per
-- (day, agent, key, host, model).
--
-- Kept by a trigger on egress_usage, so every writer (the broker's batches,
-- an import, a test seeding rows) keeps it right in the same transaction.
-- Like egress_usage it is not authorization state and carries no row tag.
CREATE TABLE egress_usage_daily (
    day                 INTEGER NOT NULL,          -- unix ms of the UTC midnight starting the day
    agent               TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    host                TEXT    NOT NULL,
    model               TEXT    NOT NULL,          -- '' when the request named none
    requests            INTEGER NOT NULL,
    estimated           INTEGER NOT NULL,
    cut                 INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cache_read_tokens   INTEGER NOT NULL,
    cache_write_tokens  INTEGER NOT NULL,
    bytes_up            INTEGER NOT NULL,
    bytes_down          INTEGER NOT NULL,
    PRIMARY KEY (day, agent, key_id, host, model)
) STRICT, WITHOUT ROWID;

INSERT INTO egress_usage_daily
SELECT (at / 86400000) * 86400000, agent, key_id, host, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage
GROUP BY 1, 2, 3, 4, 5;

CREATE TRIGGER egress_usage_daily_add AFTER INSERT ON egress_usage
BEGIN
    INSERT INTO egress_usage_daily VALUES (
        (NEW.at / 86400000) * 86400000, NEW.agent, NEW.key_id, NEW.host, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (day, agent, key_id, host, model) DO UPDATE SET
        requests = requests + 1,
        estimated = estimated + excluded.estimated,
        cut = cut + excluded.cut,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        bytes_up = bytes_up + excluded.bytes_up,
        bytes_down = bytes_down + excluded.bytes_down;
END;

-- Rows removed from egress_usage (pruning) leave the rollup: it never
-- reports what the rows no longer hold.
CREATE TRIGGER egress_usage_daily_remove AFTER DELETE ON egress_usage
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
END;
