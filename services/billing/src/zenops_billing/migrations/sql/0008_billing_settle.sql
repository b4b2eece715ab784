-- billing_settle: replaced by migration 0008 (0007's, writers queued on the account's advisory lock).
-- p_take: credits to consume (-1: all of them; 0: none — a release or an expiry); the rest
-- goes back as p_returned_kind (RELEASE or EXPIRE). Lock order: the reservation, then its
-- balance row (reserve and grant lock only a balance row, so no cycle). Less work than 0002's:
-- the key is claimed with its answer (the entry written last; the foreign key is checked at
-- commit) and the rows returned are built from what was written, not read back.
--
-- Versioned: this is the exact statement migration 0008 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE OR REPLACE FUNCTION billing_settle(
        p_tenant uuid, p_reservation uuid, p_new_status text, p_take bigint, p_returned_kind text, p_actor text,
        p_reason text, p_returned_reason text, p_idempotency_key text, p_expiring boolean,
        p_consume_id uuid, p_return_id uuid,
        p_claim_operation text, p_claim_hash bytea, p_claim_request jsonb
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        claimed boolean := false;
        r reservations%ROWTYPE;
        w wallets%ROWTYPE;
        take bigint;
        remainder bigint;
        outcome text;
        bref text;
        res billing_op_result;
    BEGIN
        IF p_tenant IS NOT NULL THEN
            PERFORM set_config('app.tenant_id', p_tenant::text, true);
        END IF;
        IF p_claim_operation IS NOT NULL THEN
            -- a twin still running is waited for on the primary key; false: a retry (nothing done).
            -- The answer: the CONSUME when anything is taken, else the returned entry (a partial
            -- consume's RELEASE comes after its CONSUME: set below).
            INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request, ledger_entry_id)
            VALUES (NULLIF(current_setting('app.tenant_id', true), '')::uuid, p_idempotency_key, p_claim_operation,
                    p_claim_hash, p_claim_request, CASE WHEN p_take = 0 THEN p_return_id ELSE p_consume_id END)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, false, 'KEY_TAKEN', NULL);
                RETURN;
            END IF;
            claimed := true;
        END IF;
        SELECT * INTO r FROM reservations WHERE id = p_reservation FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, 'RESERVATION_NOT_FOUND',
                                                      jsonb_build_object('reservation_id', p_reservation));
            RETURN;
        END IF;
        take := CASE WHEN p_take < 0 THEN r.amount ELSE p_take END;
        outcome := CASE
            WHEN r.status = 'CONSUMED' THEN 'RESERVATION_ALREADY_CONSUMED'
            WHEN r.status = 'RELEASED' THEN 'RESERVATION_ALREADY_RELEASED'
            -- past expires_at it is expired to everyone but the expiry itself, swept or not
            WHEN r.status = 'EXPIRED' OR (r.expires_at <= now() AND NOT p_expiring) THEN 'RESERVATION_EXPIRED'
            WHEN take > r.amount THEN 'EXCEEDS_RESERVED_AMOUNT'
            ELSE 'OK' END;
        IF outcome <> 'OK' THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, outcome, jsonb_build_object(
                'reservation_id', p_reservation, 'requested', take, 'reserved', r.amount,
                'expires_at', r.expires_at));
            RETURN;
        END IF;
        -- Writers of this account queue on a lock of their own (migration 0008), not on its balance
        -- row: a waiter for the row costs PostgreSQL more (a tuple lock, a wait on the holder's
        -- transaction, a re-check of the row it updated) than a waiter for this lock.
        PERFORM pg_advisory_xact_lock(hashtextextended('wallet:' || r.account_id::text, 0));
        remainder := r.amount - take;
        UPDATE reservations SET status = p_new_status, consumed_amount = take, settled_at = now(),
            settled_by = p_actor, settle_reason = p_reason
        WHERE id = p_reservation RETURNING * INTO r;
        bref := r.ref_type || ':' || r.ref_id;
        UPDATE wallets SET reserved = reserved - r.amount, consumed = consumed + take,
            entries = entries + (take > 0)::int + (remainder > 0)::int, updated_at = now()
        WHERE account_id = r.account_id RETURNING * INTO w;
        -- the answer: the reservation as settled, each entry with the balances after the last
        res := ROW('OK', NULL, r.id::text, r.account_id::text, r.amount, r.ref_type, r.ref_id, r.status,
                   r.consumed_amount, r.expires_at, r.created_at, r.settled_at, r.override_reason, r.shortfall, r.actor,
                   r.settle_reason, r.idempotency_key,
                   NULL, r.account_id::text, NULL, NULL, r.id::text, bref, p_actor, NULL, p_idempotency_key,
                   w.granted, w.consumed, NULL, w.overdraft, now(), NULL,
                   w.granted, w.consumed, w.reserved, w.overdraft);
        IF take > 0 THEN
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_consume_id, w.tenant_id, w.account_id, w.entries - (remainder > 0)::int, 'CONSUME', take,
                    r.id, bref, p_actor, p_reason, p_idempotency_key, w.granted, w.consumed, w.reserved + remainder,
                    w.overdraft);
            res.l_id := p_consume_id::text;
            res.l_kind := 'CONSUME';
            res.l_amount := take;
            res.l_reason := p_reason;
            res.l_reserved := w.reserved + remainder;
            res.l_seq := w.entries - (remainder > 0)::int;
            RETURN NEXT res;
        END IF;
        IF remainder > 0 THEN
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_return_id, w.tenant_id, w.account_id, w.entries, p_returned_kind, remainder, r.id, bref,
                    p_actor, p_returned_reason, p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
            IF claimed AND take > 0 THEN  -- a partial consume: its RELEASE is the answer
                UPDATE idempotency_keys SET ledger_entry_id = p_return_id WHERE key = p_idempotency_key;
            END IF;
            res.l_id := p_return_id::text;
            res.l_kind := p_returned_kind;
            res.l_amount := remainder;
            res.l_reason := p_returned_reason;
            res.l_reserved := w.reserved;
            res.l_seq := w.entries;
            RETURN NEXT res;
        END IF;
    END $$
