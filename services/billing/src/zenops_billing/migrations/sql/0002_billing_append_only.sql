-- billing_append_only: created by migration 0002.
-- Trigger function: refuses UPDATE, DELETE and TRUNCATE on the append-only tables.
--
-- Versioned: this is the exact statement migration 0002 runs. Never edit it once that
-- migration has been applied anywhere: a change to this object is a new .sql file
-- (named after its new migration) loaded by a new migration.

    CREATE FUNCTION billing_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$
