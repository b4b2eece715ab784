-- billing_reserve: replaced by migration 0008 (0007's, writers queued on the account's advisory lock).
-- Reserves credits for a ref under the balance-row lock (override: the shortfall as an ADJUSTMENT).
-- Less work while the balance row is locked than 0002's: the account's status is read with the
-- lock, the reservation's insert finds an ACTIVE one for the ref (no lookup first), the key is
-- claimed with its answer (the RESERVE entry, written last; the foreign key is checked at
-- commit) and the rows returned are built from what was written, not read back.
--
-- Versioned: this is the exact statement migration 0008 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE OR REPLACE FUNCTION billing_reserve(
        p_tenant uuid, p_account uuid, p_reservation_id uuid, p_amount bigint, p_ref_type text, p_ref_id text,
        p_expires_at timestamptz, p_may_override boolean, p_override_reason text, p_actor text,
        p_business_ref text, p_idempotency_key text, p_adjustment_id uuid, p_entry_id uuid,
        p_claim_operation text, p_claim_hash bytea, p_claim_request jsonb
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        claimed boolean := false;
        w wallets%ROWTYPE;
        tenant uuid;
        account_status text;
        available bigint;
        existing uuid;
        shortfall bigint := 0;
        override_reason text := '';
        outcome text;
        res billing_op_result;
        adjustment billing_op_result;
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
        -- Writers of this account queue on a lock of their own (migration 0008), not on its balance
        -- row: a waiter for the row costs PostgreSQL more (a tuple lock, a wait on the holder's
        -- transaction, a re-check of the row it updated) than a waiter for this lock.
        PERFORM pg_advisory_xact_lock(hashtextextended('wallet:' || p_account::text, 0));
        -- The balance row lock: from here to the commit, this account is ours.
        SELECT b.tenant_id, b.granted - b.consumed - b.reserved, a.status INTO tenant, available, account_status
        FROM wallets b JOIN billing_accounts a ON a.id = b.account_id
        WHERE b.account_id = p_account FOR UPDATE OF b;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, 'ACCOUNT_NOT_FOUND',
                                                      jsonb_build_object('account_id', p_account));
            RETURN;
        END IF;
        IF account_status <> 'ACTIVE' THEN
            outcome := 'ACCOUNT_SUSPENDED';
        ELSIF available >= p_amount THEN
            outcome := 'OK';
        ELSIF p_may_override THEN
            outcome := 'OK';
            -- only the part not covered by a non-negative available is new overdraft
            shortfall := p_amount - GREATEST(available, 0);
            override_reason := p_override_reason;
        ELSE
            outcome := 'INSUFFICIENT_CREDITS';
        END IF;
        IF outcome = 'OK' THEN
            -- One ACTIVE reservation per ref: its unique index says whether there is one (a probe
            -- of that index, whatever plan a lookup would get).
            INSERT INTO reservations (id, tenant_id, account_id, amount, ref_type, ref_id, shortfall, override_reason,
                                      expires_at, actor, idempotency_key)
            VALUES (p_reservation_id, tenant, p_account, p_amount, p_ref_type, p_ref_id, shortfall, override_reason,
                    p_expires_at, p_actor, p_idempotency_key)
            ON CONFLICT (account_id, ref_type, ref_id) WHERE status = 'ACTIVE' DO NOTHING;
            IF NOT FOUND THEN
                outcome := 'RESERVATION_EXISTS';
            END IF;
        END IF;
        IF outcome <> 'OK' THEN
            -- An ACTIVE reservation for the ref comes before any other refusal (a retried acceptance
            -- is no shortfall). Under the lock no one else can add one for this account: this read
            -- is the truth.
            SELECT id INTO existing FROM reservations
            WHERE account_id = p_account AND ref_type = p_ref_type AND ref_id = p_ref_id AND status = 'ACTIVE';
            IF existing IS NOT NULL THEN
                outcome := 'RESERVATION_EXISTS';
            END IF;
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, outcome, jsonb_build_object(
                'account_id', p_account, 'requested', p_amount, 'available', available,
                'reservation_id', existing, 'ref_type', p_ref_type, 'ref_id', p_ref_id));
            RETURN;
        END IF;
        UPDATE wallets SET reserved = reserved + p_amount, overdraft = overdraft + shortfall,
            entries = entries + 1 + (shortfall > 0)::int, updated_at = now()
        WHERE account_id = p_account RETURNING * INTO w;
        -- the answer: the reservation as inserted, each entry with the balances after the last
        res := ROW('OK', NULL, p_reservation_id::text, p_account::text, p_amount, p_ref_type, p_ref_id, 'ACTIVE', 0,
                   p_expires_at, now(), NULL, override_reason, shortfall, p_actor, '', p_idempotency_key,
                   p_entry_id::text, p_account::text, 'RESERVE', p_amount, p_reservation_id::text, p_business_ref,
                   p_actor, '', p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft, now(), w.entries,
                   w.granted, w.consumed, w.reserved, w.overdraft);
        IF shortfall > 0 THEN
            -- the override: the shortfall first (an ADJUSTMENT), audited with its reason
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_adjustment_id, tenant, p_account, w.entries - 1, 'ADJUSTMENT', shortfall,
                    p_reservation_id, p_business_ref, p_actor, override_reason, p_idempotency_key, w.granted,
                    w.consumed, w.reserved - p_amount, w.overdraft);
            INSERT INTO account_events (id, tenant_id, account_id, kind, actor, reason, detail)
            VALUES (gen_random_uuid(), tenant, p_account, 'CREDITS_OVERRIDE', p_actor, override_reason,
                    jsonb_build_object('reservation_id', p_reservation_id, 'amount', p_amount,
                                       'shortfall', shortfall, 'available_before', available,
                                       'ref', p_ref_type || ':' || p_ref_id));
            -- its row: the reservation's, with the ADJUSTMENT entry and the balances after it
            adjustment := res;
            adjustment.l_id := p_adjustment_id::text;
            adjustment.l_kind := 'ADJUSTMENT';
            adjustment.l_amount := shortfall;
            adjustment.l_reason := override_reason;
            adjustment.l_reserved := w.reserved - p_amount;
            adjustment.l_seq := w.entries - 1;
            RETURN NEXT adjustment;
        END IF;
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref, actor,
                                   reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                   overdraft_after)
        VALUES (p_entry_id, tenant, p_account, w.entries, 'RESERVE', p_amount, p_reservation_id,
                p_business_ref, p_actor, '', p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
        RETURN NEXT res;
    END $$
