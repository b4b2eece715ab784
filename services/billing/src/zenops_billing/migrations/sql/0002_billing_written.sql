-- billing_written: created by migration 0002.
-- The rows an operation answers: its ledger entries (ids given), with the reservation
-- and the balances after the last one; records the key's answer (its last entry).
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_written(p_key text, p_claimed boolean, p_reservation uuid, p_entries uuid[])
    RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    BEGIN
        IF p_claimed THEN
            UPDATE idempotency_keys SET ledger_entry_id = p_entries[array_upper(p_entries, 1)] WHERE key = p_key;
        END IF;
        RETURN QUERY
        SELECT 'OK', NULL::jsonb,
            r.id::text, r.account_id::text, r.amount, r.ref_type, r.ref_id, r.status, r.consumed_amount,
            r.expires_at, r.created_at, r.settled_at, r.override_reason, r.shortfall, r.actor, r.settle_reason,
            r.idempotency_key,
            l.id::text, l.account_id::text, l.kind, l.amount, COALESCE(l.reservation_id::text, ''), l.business_ref,
            l.actor, l.reason, l.idempotency_key, l.granted_after, l.consumed_after, l.reserved_after,
            l.overdraft_after, l.created_at, l.seq,
            w.granted, w.consumed, w.reserved, w.overdraft
        FROM credit_ledger l
        JOIN wallets w ON w.account_id = l.account_id
        LEFT JOIN reservations r ON r.id = p_reservation
        WHERE l.id = ANY(p_entries)
        ORDER BY l.seq;
    END $$
