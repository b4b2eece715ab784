-- billing_reserve: created by migration 0002.
-- Reserves credits for a ref under the balance-row lock (override: the shortfall as an ADJUSTMENT).
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_reserve(
        p_tenant uuid, p_account uuid, p_reservation_id uuid, p_amount bigint, p_ref_type text, p_ref_id text,
        p_expires_at timestamptz, p_may_override boolean, p_override_reason text, p_actor text,
        p_business_ref text, p_idempotency_key text, p_adjustment_id uuid, p_entry_id uuid,
        p_claim_operation text, p_claim_hash bytea, p_claim_request jsonb
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        claimed boolean := false;
        w wallets%ROWTYPE;
        account_status text;
        available bigint;
        existing uuid;
        shortfall bigint := 0;
        outcome text;
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
        -- The balance row lock: from here to the commit, this account is ours.
        SELECT * INTO w FROM wallets WHERE account_id = p_account FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, 'ACCOUNT_NOT_FOUND',
                                                      jsonb_build_object('account_id', p_account));
            RETURN;
        END IF;
        SELECT status INTO account_status FROM billing_accounts WHERE id = p_account;
        available := w.granted - w.consumed - w.reserved;
        -- Under the lock no one else can add one for this account: this read is the truth.
        SELECT id INTO existing FROM reservations
        WHERE account_id = p_account AND ref_type = p_ref_type AND ref_id = p_ref_id AND status = 'ACTIVE';
        IF existing IS NOT NULL THEN
            outcome := 'RESERVATION_EXISTS';  -- before any other refusal: a retried acceptance is no shortfall
        ELSIF account_status <> 'ACTIVE' THEN
            outcome := 'ACCOUNT_SUSPENDED';
        ELSIF available >= p_amount THEN
            outcome := 'OK';
        ELSIF p_may_override THEN
            outcome := 'OK';
            -- only the part not covered by a non-negative available is new overdraft
            shortfall := p_amount - GREATEST(available, 0);
        ELSE
            outcome := 'INSUFFICIENT_CREDITS';
        END IF;
        IF outcome <> 'OK' THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, outcome, jsonb_build_object(
                'account_id', p_account, 'requested', p_amount, 'available', available,
                'reservation_id', existing, 'ref_type', p_ref_type, 'ref_id', p_ref_id));
            RETURN;
        END IF;
        INSERT INTO reservations (id, tenant_id, account_id, amount, ref_type, ref_id, shortfall, override_reason,
                                  expires_at, actor, idempotency_key)
        VALUES (p_reservation_id, w.tenant_id, p_account, p_amount, p_ref_type, p_ref_id, shortfall,
                CASE WHEN shortfall > 0 THEN p_override_reason ELSE '' END, p_expires_at, p_actor,
                p_idempotency_key);
        UPDATE wallets SET reserved = reserved + p_amount, overdraft = overdraft + shortfall,
            entries = entries + 1 + (shortfall > 0)::int, updated_at = now()
        WHERE account_id = p_account RETURNING * INTO w;
        IF shortfall > 0 THEN
            -- the override: the shortfall first (an ADJUSTMENT), audited with its reason
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_adjustment_id, w.tenant_id, p_account, w.entries - 1, 'ADJUSTMENT', shortfall,
                    p_reservation_id, p_business_ref, p_actor, p_override_reason, p_idempotency_key, w.granted,
                    w.consumed, w.reserved - p_amount, w.overdraft);
            INSERT INTO account_events (id, tenant_id, account_id, kind, actor, reason, detail)
            VALUES (gen_random_uuid(), w.tenant_id, p_account, 'CREDITS_OVERRIDE', p_actor, p_override_reason,
                    jsonb_build_object('reservation_id', p_reservation_id, 'amount', p_amount,
                                       'shortfall', shortfall, 'available_before', available,
                                       'ref', p_ref_type || ':' || p_ref_id));
        END IF;
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref, actor,
                                   reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                   overdraft_after)
        VALUES (p_entry_id, w.tenant_id, p_account, w.entries, 'RESERVE', p_amount, p_reservation_id,
                p_business_ref, p_actor, '', p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
        RETURN QUERY SELECT * FROM billing_written(
            p_idempotency_key, claimed, p_reservation_id,
            CASE WHEN shortfall > 0 THEN ARRAY[p_adjustment_id, p_entry_id] ELSE ARRAY[p_entry_id] END);
    END $$
