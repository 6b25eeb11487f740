-- 010_target_keys: a target holds one named key of its agent, not all of them
-- (issue 19). Rotating a key rewrites only the targets holding that key.
-- NULL (targets registered before this migration, whose key nobody named):
-- the rotation of a key reads the file and binds the target if, and only
-- if, the file holds that very key. Added as a column, not by a rebuild, so
-- every row and the table's other references stay as they are.
ALTER TABLE targets ADD COLUMN key_name TEXT
    CHECK (key_name IS NULL OR (length(key_name) BETWEEN 1 AND 64 AND key_name NOT GLOB '*[^a-z0-9-]*'));

-- An agent with keys of only one name: its targets can only hold that key.
UPDATE targets SET key_name = (
    SELECT min(k.name) FROM agent_keys k
    WHERE k.agent_id = targets.agent_id AND k.status IN ('active', 'retiring'))
WHERE key_name IS NULL
  AND (SELECT count(DISTINCT k.name) FROM agent_keys k
       WHERE k.agent_id = targets.agent_id AND k.status IN ('active', 'retiring')) = 1;
