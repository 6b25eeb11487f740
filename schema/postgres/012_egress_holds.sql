-- 012_egress_holds (PostgreSQL): mirrors schema/012_egress_holds.sql; the
-- CHECK is altered and the tag added in place.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check,
    ADD CONSTRAINT approvals_kind_check
        CHECK (kind IN ('rotate_secret', 'reinstate_key', 'egress_request'));
ALTER TABLE approvals ADD COLUMN tag BYTEA CHECK (tag IS NULL OR length(tag) = 32);
CREATE INDEX approvals_open ON approvals (kind, state) WHERE state IN ('pending', 'approved');
