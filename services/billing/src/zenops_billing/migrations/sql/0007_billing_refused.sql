-- billing_refused: replaced by migration 0007 (created by 0002).
-- The one row of a refusal (records it on a claimed key: a retry fails the same way). Since
-- 0007 a claim carries the answer the operation would give (its last entry): a refusal clears it.
--
-- Versioned: this is the exact statement migration 0007 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE OR REPLACE FUNCTION billing_refused(p_key text, p_claimed boolean, p_outcome text, p_detail jsonb)
    RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    BEGIN
        IF p_claimed THEN  -- a retry with the key fails the same way
            UPDATE idempotency_keys
            SET ledger_entry_id = NULL, error = jsonb_build_object('outcome', p_outcome, 'detail', p_detail)
            WHERE key = p_key;
        END IF;
        RETURN QUERY SELECT p_outcome, p_detail, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text,
            NULL::text, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::text,
            NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint,
            NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint;
    END $$
