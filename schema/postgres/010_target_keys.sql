-- 010_target_keys (PostgreSQL): mirrors schema/010_target_keys.sql.
ALTER TABLE targets ADD COLUMN key_name TEXT
    CHECK (key_name IS NULL OR (length(key_name) BETWEEN 1 AND 64 AND key_name ~ '^[a-z0-9-]*$'));

UPDATE targets SET key_name = (
    SELECT min(k.name) FROM agent_keys k
    WHERE k.agent_id = targets.agent_id AND k.status IN ('active', 'retiring'))
WHERE key_name IS NULL
  AND (SELECT count(DISTINCT k.name) FROM agent_keys k
       WHERE k.agent_id = targets.agent_id AND k.status IN ('active', 'retiring')) = 1;
