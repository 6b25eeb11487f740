-- 011_usage: what each brokered request cost (issue 16). One row per request
-- the broker forwarded: who (agent, key id), where (host:port, method, path
-- without its query, the index of the [[egress]] rule that matched), what came
-- back (status, bytes each way, time to the answer's head and to its end) and,
-- for model APIs, the token counts the answer reported. Never a body, a header
-- value or a query string. Raw token counts are kept, not money: cost is
-- computed when a report is asked for, from the price table in force then.
--
-- Not authorization state: nothing here decides what an agent may read or
-- send (budgets are enforced from the broker's own running tally), so the rows
-- carry no row tag. Someone with write access to the file can make spend
-- look smaller or larger; they could as well delete the file.
CREATE TABLE egress_usage (
    usage_id            INTEGER PRIMARY KEY,
    at                  INTEGER NOT NULL,          -- unix ms, when the answer ended (or was cut)
    agent               TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    host                TEXT    NOT NULL,          -- host:port of the CONNECT
    method              TEXT    NOT NULL,
    path                TEXT    NOT NULL,          -- no query string, ever
    rule                INTEGER,                   -- index of the matched [[egress]] rule; NULL: tunnelled
    status              INTEGER NOT NULL,          -- the upstream's status (0: no answer)
    bytes_up            INTEGER NOT NULL,
    bytes_down          INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,          -- to the answer's head
    duration_ms         INTEGER NOT NULL,          -- to the answer's end
    provider            TEXT,                      -- openai, anthropic, openrouter, gemini
    model               TEXT,
    input_tokens        INTEGER NOT NULL DEFAULT 0, -- not cached
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens   INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens  INTEGER NOT NULL DEFAULT 0,
    estimated           INTEGER NOT NULL CHECK (estimated IN (0, 1)), -- no usage in the answer: counts guessed
    cut                 INTEGER NOT NULL CHECK (cut IN (0, 1))        -- the client went away before the end
) STRICT;
-- per agent per day (budgets, `vault usage --agent A --by day`)
CREATE INDEX egress_usage_agent_at ON egress_usage (agent, at);
-- per key
CREATE INDEX egress_usage_key_at ON egress_usage (key_id, at);
-- every agent since a time
CREATE INDEX egress_usage_at ON egress_usage (at);

-- Records the broker could not queue (its writer fell behind): counted, so a
-- report says how much it is missing.
CREATE TABLE egress_usage_dropped (
    at     INTEGER NOT NULL,
    count  INTEGER NOT NULL CHECK (count > 0)
) STRICT;
