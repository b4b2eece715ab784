-- billing_claim: created by migration 0002.
-- Claims an idempotency key (false: it exists — a retry, or a twin that committed first;
-- a twin still running is waited for on the primary key).
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_claim(p_key text, p_operation text, p_hash bytea, p_request jsonb) RETURNS boolean
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request)
        VALUES (NULLIF(current_setting('app.tenant_id', true), '')::uuid, p_key, p_operation, p_hash, p_request)
        ON CONFLICT DO NOTHING;
        RETURN FOUND;
    END $$
