-- 017_egress_only_keys: a named key can be limited to the broker. Such a key
-- (the one `vault env --broker` writes into a gateway's env file) mints only
-- `egress` tokens and reads nothing through the API, so a process holding it
-- can have its requests brokered but never learn a brokered secret's value.
-- The flag is covered by the key's row tag when set, so clearing it behind
-- the vault's back is seen as tampering.
ALTER TABLE agent_keys ADD COLUMN egress_only INTEGER NOT NULL DEFAULT 0 CHECK (egress_only IN (0, 1));
