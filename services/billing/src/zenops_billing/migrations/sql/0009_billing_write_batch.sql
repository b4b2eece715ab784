-- billing_write_batch: created by migration 0009.
-- A batch of settles and reserves (one account's, collected by billing's group commit) in the
-- caller's one transaction: each item is the single function's call, with its own tenant, key
-- and outcome; rows come back tagged with the item's index in the batch.
--
-- Lock order as a single settle's: its reservation's row before the account's locks. A batch
-- holds the account from its first item on, so it locks every reservation it settles first
-- (in id order: two batches never wait on each other), each under its caller's tenant.
-- Settles run before reserves: the credits they return are available to the reserves.
--
-- Versioned: this is the exact statement migration 0009 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_write_batch(p_settles jsonb, p_reserves jsonb)
    RETURNS TABLE (item int, result billing_op_result) LANGUAGE plpgsql AS $$
    DECLARE
        x record;
        res billing_op_result;
    BEGIN
        FOR x IN SELECT s.tenant, s.rid FROM jsonb_to_recordset(p_settles) AS s(tenant uuid, rid uuid) ORDER BY s.rid
        LOOP
            PERFORM set_config('app.tenant_id', x.tenant::text, true);
            PERFORM 1 FROM reservations WHERE id = x.rid FOR UPDATE;
        END LOOP;
        FOR x IN SELECT * FROM jsonb_to_recordset(p_settles) AS s(
            i int, tenant uuid, rid uuid, new_status text, take bigint, x_kind text, actor text, reason text,
            x_reason text, ikey text, expiring boolean, c_id uuid, x_id uuid, cop text, chash text, creq text)
        LOOP
            FOR res IN SELECT * FROM billing_settle(
                x.tenant, x.rid, x.new_status, x.take, x.x_kind, x.actor, x.reason, x.x_reason, x.ikey, x.expiring,
                x.c_id, x.x_id, x.cop, decode(x.chash, 'hex'), x.creq::jsonb)
            LOOP
                item := x.i;
                result := res;
                RETURN NEXT;
            END LOOP;
        END LOOP;
        FOR x IN SELECT * FROM jsonb_to_recordset(p_reserves) AS r(
            i int, tenant uuid, aid uuid, rid uuid, amount bigint, rt text, ri text, exp timestamptz,
            may_override boolean, oreason text, actor text, bref text, ikey text, adj_id uuid, res_id uuid, cop text,
            chash text, creq text)
        LOOP
            FOR res IN SELECT * FROM billing_reserve(
                x.tenant, x.aid, x.rid, x.amount, x.rt, x.ri, x.exp, x.may_override, x.oreason, x.actor, x.bref,
                x.ikey, x.adj_id, x.res_id, x.cop, decode(x.chash, 'hex'), x.creq::jsonb)
            LOOP
                item := x.i;
                result := res;
                RETURN NEXT;
            END LOOP;
        END LOOP;
    END $$
