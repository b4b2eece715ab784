-- billing_op_result: created by migration 0002.
-- The row every wallet function returns: one per ledger entry written, or one with the refusal.
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE TYPE billing_op_result AS (
        outcome text, detail jsonb,
        r_id text, r_account_id text, r_amount bigint, r_ref_type text, r_ref_id text, r_status text,
        r_consumed_amount bigint, r_expires_at timestamptz, r_created_at timestamptz, r_settled_at timestamptz,
        r_override_reason text, r_shortfall bigint, r_actor text, r_settle_reason text, r_idempotency_key text,
        l_id text, l_account_id text, l_kind text, l_amount bigint, l_reservation_id text, l_business_ref text,
        l_actor text, l_reason text, l_idempotency_key text, l_granted bigint, l_consumed bigint,
        l_reserved bigint, l_overdraft bigint, l_created_at timestamptz, l_seq bigint,
        w_granted bigint, w_consumed bigint, w_reserved bigint, w_overdraft bigint
    )
