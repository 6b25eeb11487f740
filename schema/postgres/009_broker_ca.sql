-- 009_broker_ca (PostgreSQL): mirrors schema/009_broker_ca.sql; the CHECK is
-- altered in place.
ALTER TABLE vault_keys DROP CONSTRAINT vault_keys_purpose_check,
    ADD CONSTRAINT vault_keys_purpose_check
        CHECK (purpose IN ('token_signing', 'audit_mac', 'broker_ca'));
