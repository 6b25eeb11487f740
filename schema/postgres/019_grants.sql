-- 019_grants (PostgreSQL): a policy's grant of another agent's secret
-- (`secrets = ["hermes-finance/STRIPE_KEY"]`) under row-level security.
-- 001's policies show an agent its own rows only, so a granted read was
-- refused here while SQLite served it. The vault checks the grant itself,
-- then names the one secret it allowed in the transaction-local setting
-- `vault.granted` (comma-separated `AGENT/NAME` paths, set_config(.., true),
-- cleared whenever the transaction says who acts): these policies let the
-- acting agent SELECT exactly those rows, never write them. A query the
-- vault issues for any other agent's rows still sees nothing.
CREATE FUNCTION vault_granted() RETURNS text[] LANGUAGE sql STABLE
    AS $$ SELECT string_to_array(nullif(current_setting('vault.granted', true), ''), ',') $$;

-- the granting agent's row, so the path's agent name resolves to its id
CREATE POLICY granted ON agents FOR SELECT
    USING (vault_agent() IS NOT NULL
           AND name IN (SELECT split_part(g, '/', 1) FROM unnest(vault_granted()) g));

-- the granted secret (the subquery runs under agents' policies above)
CREATE POLICY granted ON secrets FOR SELECT
    USING (vault_agent() IS NOT NULL
           AND (SELECT a.name FROM agents a WHERE a.agent_id = secrets.agent_id) || '/' || name
               = ANY (vault_granted()));

-- its versions (the subquery runs under secrets' policies: own or granted)
CREATE POLICY granted ON secret_versions FOR SELECT
    USING (vault_granted() IS NOT NULL
           AND secret_id IN (SELECT s.secret_id FROM secrets s));
