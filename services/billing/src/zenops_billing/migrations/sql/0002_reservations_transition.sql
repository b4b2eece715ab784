-- reservations_transition: created by migration 0002.
-- The reservation state machine, enforced where no code path can skip it.
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION reservations_transition() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'UPDATE' THEN
            RAISE EXCEPTION 'reservations are never deleted (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.status <> 'ACTIVE' THEN
            RAISE EXCEPTION 'reservation % is % (final): no further transition', OLD.id, OLD.status
                USING ERRCODE = 'check_violation';
        END IF;
        IF (NEW.id, NEW.tenant_id, NEW.account_id, NEW.amount, NEW.ref_type, NEW.ref_id, NEW.shortfall,
            NEW.created_at)
           IS DISTINCT FROM (OLD.id, OLD.tenant_id, OLD.account_id, OLD.amount, OLD.ref_type, OLD.ref_id,
            OLD.shortfall, OLD.created_at) THEN
            RAISE EXCEPTION 'reservation % : only its settlement may change', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
