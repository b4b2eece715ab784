-- billing_debit: created by migration 0005.
-- One call: lock the balance row, take `p_amount` back as a reservation consumed at once, the
-- uncovered part an ADJUSTMENT (overdraft) tied to it plus an account event RECOVERY_DUE.
-- Returns billing_op_result rows like the other wallet functions (billing_written). Unlike a
-- reserve it ignores the account's status: money already refunded is recovered regardless.
--
-- Versioned: this is the exact statement migration 0005 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_debit(
        p_account uuid, p_reservation_id uuid, p_amount bigint, p_ref_id text, p_actor text, p_reason text,
        p_idempotency_key text, p_adjustment_id uuid, p_reserve_id uuid, p_consume_id uuid
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        w wallets%ROWTYPE;
        available bigint;
        shortfall bigint;
        entries_before bigint;
        bref text := 'manual:' || p_ref_id;
    BEGIN
        SELECT * INTO w FROM wallets WHERE account_id = p_account FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, false, 'ACCOUNT_NOT_FOUND',
                                                      jsonb_build_object('account_id', p_account));
            RETURN;
        END IF;
        available := w.granted - w.consumed - w.reserved;
        shortfall := p_amount - LEAST(GREATEST(available, 0), p_amount);
        entries_before := w.entries;
        INSERT INTO reservations (id, tenant_id, account_id, amount, ref_type, ref_id, status, consumed_amount,
                                  shortfall, override_reason, expires_at, settled_at, actor, settled_by,
                                  settle_reason, idempotency_key)
        VALUES (p_reservation_id, w.tenant_id, p_account, p_amount, 'manual', p_ref_id, 'CONSUMED', p_amount,
                shortfall, CASE WHEN shortfall > 0 THEN p_reason ELSE '' END, now(), now(), p_actor, p_actor,
                p_reason, p_idempotency_key);
        UPDATE wallets SET consumed = consumed + p_amount, overdraft = overdraft + shortfall,
            entries = entries + 2 + (shortfall > 0)::int, updated_at = now()
        WHERE account_id = p_account RETURNING * INTO w;
        IF shortfall > 0 THEN
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_adjustment_id, w.tenant_id, p_account, entries_before + 1, 'ADJUSTMENT', shortfall,
                    p_reservation_id, bref, p_actor, p_reason, p_idempotency_key, w.granted, w.consumed - p_amount,
                    w.reserved, w.overdraft);
            INSERT INTO account_events (id, tenant_id, account_id, kind, actor, reason, detail)
            VALUES (gen_random_uuid(), w.tenant_id, p_account, 'RECOVERY_DUE', p_actor, p_reason,
                    jsonb_build_object('reservation_id', p_reservation_id, 'amount', p_amount,
                                       'shortfall', shortfall, 'available_before', available, 'ref', bref));
        END IF;
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref, actor,
                                   reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                   overdraft_after)
        VALUES (p_reserve_id, w.tenant_id, p_account, w.entries - 1, 'RESERVE', p_amount, p_reservation_id, bref,
                p_actor, p_reason, p_idempotency_key, w.granted, w.consumed - p_amount, w.reserved + p_amount,
                w.overdraft);
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref, actor,
                                   reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                   overdraft_after)
        VALUES (p_consume_id, w.tenant_id, p_account, w.entries, 'CONSUME', p_amount, p_reservation_id, bref,
                p_actor, p_reason, p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
        RETURN QUERY SELECT * FROM billing_written(
            p_idempotency_key, false, p_reservation_id,
            CASE WHEN shortfall > 0 THEN ARRAY[p_adjustment_id, p_reserve_id, p_consume_id]
                 ELSE ARRAY[p_reserve_id, p_consume_id] END);
    END $$
