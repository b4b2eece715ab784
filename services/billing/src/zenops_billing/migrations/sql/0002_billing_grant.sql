-- billing_grant: created by migration 0002.
-- Adds credits (GRANT, TOPUP, REFILL, ADJUSTMENT) under the balance-row lock.
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_grant(
        p_tenant uuid, p_account uuid, p_kind text, p_amount bigint, p_reason text, p_actor text,
        p_business_ref text, p_idempotency_key text, p_entry_id uuid,
        p_claim_operation text, p_claim_hash bytea, p_claim_request jsonb
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        claimed boolean := false;
        w wallets%ROWTYPE;
    BEGIN
        IF p_tenant IS NOT NULL THEN
            PERFORM set_config('app.tenant_id', p_tenant::text, true);
        END IF;
        IF p_claim_operation IS NOT NULL THEN
            claimed := billing_claim(p_idempotency_key, p_claim_operation, p_claim_hash, p_claim_request);
            IF NOT claimed THEN
                RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, false, 'KEY_TAKEN', NULL);
                RETURN;
            END IF;
        END IF;
        UPDATE wallets SET granted = granted + p_amount, entries = entries + 1, updated_at = now()
        WHERE account_id = p_account RETURNING * INTO w;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, 'ACCOUNT_NOT_FOUND',
                                                      jsonb_build_object('account_id', p_account));
            RETURN;
        END IF;
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, business_ref, actor, reason,
                                   idempotency_key, granted_after, consumed_after, reserved_after, overdraft_after)
        VALUES (p_entry_id, w.tenant_id, w.account_id, w.entries, p_kind, p_amount, p_business_ref, p_actor,
                p_reason, p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
        RETURN QUERY SELECT * FROM billing_written(p_idempotency_key, claimed, NULL, ARRAY[p_entry_id]);
    END $$
