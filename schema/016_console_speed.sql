-- 016_console_speed: the web console stays fast on a long history (issue 17).
--
-- audit_verified: where the last complete walk of the audit trail ended. The
-- console verifies the chain from here on rather than from the first record, so
-- its audit page stays fast on a long trail and a server restart does not start
-- over. Written only when a walk from the trail's start finishes intact, and
-- deleted when any check finds the chain broken. The MAC (HMAC-SHA256 under the
-- audit key) means someone holding only the file cannot move it forward over
-- records they edited; deleting it only makes the next check walk everything.
CREATE TABLE audit_verified (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    through_seq     INTEGER NOT NULL CHECK (through_seq >= 1),
    chain           BLOB    NOT NULL CHECK (length(chain) = 32),
    -- when that walk finished (Unix ms)
    verified_at_ms  INTEGER NOT NULL,
    mac             BLOB    NOT NULL CHECK (length(mac) = 32)
) STRICT;

-- The spend page's own grains (issue 17). The daily rollup of schema 014 keeps
-- one row per day, agent, key, host and model: with 500 keys in use that is
-- some 15,000 rows a month, and each of the page's three sums read them all.
-- These two hold what the page shows: per day, host and model (its chart over
-- time and its host and model tables, a few hundred rows a month), and per
-- calendar month, agent, key and model (its agent and key tables and the
-- overview's spend this month, one row per key and model). Kept by triggers
-- on egress_usage like 014's, in the writer's transaction; not authorization
-- state, so untagged.
CREATE TABLE egress_usage_day_host (
    day                 INTEGER NOT NULL,          -- unix ms of the UTC midnight starting the day
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
    PRIMARY KEY (day, host, model)
) STRICT, WITHOUT ROWID;

CREATE TABLE egress_usage_month_key (
    month               INTEGER NOT NULL,          -- unix ms of the UTC midnight starting the month
    agent               TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    requests            INTEGER NOT NULL,
    estimated           INTEGER NOT NULL,
    cut                 INTEGER NOT NULL,
    input_tokens        INTEGER NOT NULL,
    output_tokens       INTEGER NOT NULL,
    cache_read_tokens   INTEGER NOT NULL,
    cache_write_tokens  INTEGER NOT NULL,
    bytes_up            INTEGER NOT NULL,
    bytes_down          INTEGER NOT NULL,
    PRIMARY KEY (month, agent, key_id, model)
) STRICT, WITHOUT ROWID;

INSERT INTO egress_usage_day_host
SELECT (u.at / 86400000) * 86400000, host, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage u
GROUP BY 1, 2, 3;

INSERT INTO egress_usage_month_key
SELECT CAST(strftime('%s', u.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000, agent, key_id, coalesce(model, ''), count(*),
       sum(estimated), sum(cut), sum(input_tokens), sum(output_tokens),
       sum(cache_read_tokens), sum(cache_write_tokens), sum(bytes_up), sum(bytes_down)
FROM egress_usage u
GROUP BY 1, 2, 3, 4;

CREATE TRIGGER egress_usage_rollups_add AFTER INSERT ON egress_usage
BEGIN
    INSERT INTO egress_usage_day_host VALUES (
        (NEW.at / 86400000) * 86400000, NEW.host, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (day, host, model) DO UPDATE SET
        requests = requests + 1,
        estimated = estimated + excluded.estimated,
        cut = cut + excluded.cut,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens,
        bytes_up = bytes_up + excluded.bytes_up,
        bytes_down = bytes_down + excluded.bytes_down;
    INSERT INTO egress_usage_month_key VALUES (
        CAST(strftime('%s', NEW.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000, NEW.agent, NEW.key_id, coalesce(NEW.model, ''),
        1, NEW.estimated, NEW.cut, NEW.input_tokens, NEW.output_tokens,
        NEW.cache_read_tokens, NEW.cache_write_tokens, NEW.bytes_up, NEW.bytes_down)
    ON CONFLICT (month, agent, key_id, model) DO UPDATE SET
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

CREATE TRIGGER egress_usage_rollups_remove AFTER DELETE ON egress_usage
BEGIN
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
    WHERE month = CAST(strftime('%s', OLD.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000 AND agent = OLD.agent AND key_id = OLD.key_id AND model = coalesce(OLD.model, '');
    DELETE FROM egress_usage_month_key WHERE month = CAST(strftime('%s', OLD.at / 1000, 'unixepoch', 'start of month') AS INTEGER) * 1000 AND agent = OLD.agent AND key_id = OLD.key_id AND model = coalesce(OLD.model, '') AND requests <= 0;
END;
