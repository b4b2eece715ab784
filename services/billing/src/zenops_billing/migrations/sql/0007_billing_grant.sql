-- billing_grant: replaced by migration 0007 (created by 0002).
-- Adds credits (GRANT, TOPUP, REFILL, ADJUSTMENT) under the balance-row lock. The key is
-- claimed with its answer (the one entry; the foreign key is checked at commit) and the row
-- returned is built from what was written: no second write of the key, no read back.
--
-- Versioned: this is the exact statement migration 0007 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE OR REPLACE FUNCTION billing_grant(
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
            -- a twin still running is waited for on the primary key; false: a retry (nothing done)
            INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request, ledger_entry_id)
            VALUES (NULLIF(current_setting('app.tenant_id', true), '')::uuid, p_idempotency_key, p_claim_operation,
                    p_claim_hash, p_claim_request, p_entry_id)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, false, 'KEY_TAKEN', NULL);
                RETURN;
            END IF;
            claimed := true;
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
        RETURN QUERY SELECT 'OK', NULL::jsonb,
            NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::bigint,
            NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::bigint, NULL::text,
            NULL::text, NULL::text,
            p_entry_id::text, p_account::text, p_kind, p_amount, '', p_business_ref, p_actor, p_reason,
            p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft, now(), w.entries,
            w.granted, w.consumed, w.reserved, w.overdraft;
    END $$
