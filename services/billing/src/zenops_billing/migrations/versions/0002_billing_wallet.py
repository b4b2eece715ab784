"""Billing wallet: accounts, balance rows, the credit ledger, reservations, idempotency keys,
usage events and the account audit trail.

Every table but `billing_tenants` carries `tenant_id` under row-level security.
`billing_tenants` lists the tenant ids that have billing data (ids only), so background
sweeps know which tenants to visit: under RLS nothing else can tell them.

The database itself protects the money path:
- `credit_ledger` and `account_events` are append-only: a trigger refuses UPDATE, DELETE and
  TRUNCATE, for the service's own role too (it owns the tables; triggers bind owners).
- a reservation moves ACTIVE → CONSUMED | RELEASED | EXPIRED once; its amount, account
  and ref never change, and it is never deleted (trigger);
- one ACTIVE reservation per (tenant, account, ref_type, ref_id) (partial unique index);
- balance figures are never negative, and available (granted - consumed - reserved) never
  goes below minus the recorded override allowance (CHECK);
- ledger amounts are > 0, and each entry carries the balances after it (per-account `seq`,
  unique: two writers that skipped the row lock would collide here).

The credit operations themselves are database functions (billing_grant, billing_reserve,
billing_settle; see FUNCTIONS_UP): one call locks, decides, writes and records the
idempotency key's answer, so the credit RPCs cost one round trip each.

Reservations and ledger entries reference the balance row (wallets), not billing_accounts:
a foreign-key check takes a KEY SHARE lock on the referenced row, which on the account row
every concurrent operation would share (MultiXacts); the balance row is already locked FOR
UPDATE by the very transaction, so the check costs nothing more there.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TENANT_TABLES = ("billing_accounts", "wallets", "credit_ledger", "reservations", "idempotency_keys",
                 "usage_events", "account_events")

GSTIN = "^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$"

UP = [
    """
    CREATE TABLE billing_tenants (
        tenant_id uuid PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    f"""
    CREATE TABLE billing_accounts (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        external_key text CHECK (length(external_key) BETWEEN 1 AND 200),   -- NULL: none
        display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
        policy text NOT NULL CHECK (policy IN ('CREDIT', 'POSTPAID')),
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
        gstin text CHECK (gstin ~ '{GSTIN}'),                               -- NULL: none
        billing_address text NOT NULL DEFAULT '' CHECK (length(billing_address) <= 1000),
        currency text NOT NULL DEFAULT 'INR' CHECK (currency = 'INR'),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        version integer NOT NULL DEFAULT 1
    )
    """,
    "CREATE UNIQUE INDEX billing_accounts_external_key ON billing_accounts (tenant_id, external_key)",
    "CREATE INDEX billing_accounts_list ON billing_accounts (tenant_id, created_at, id)",
    # One balance row per account: the row every balance-changing operation locks.
    """
    CREATE TABLE wallets (
        account_id uuid PRIMARY KEY REFERENCES billing_accounts (id),
        tenant_id uuid NOT NULL,
        granted bigint NOT NULL DEFAULT 0 CHECK (granted >= 0),
        consumed bigint NOT NULL DEFAULT 0 CHECK (consumed >= 0),
        reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        overdraft bigint NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
        entries bigint NOT NULL DEFAULT 0 CHECK (entries >= 0),         -- ledger entries so far (= last seq)
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT wallets_available_floor CHECK (granted - consumed - reserved >= -overdraft)
    )
    """,
    """
    CREATE TABLE reservations (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES wallets (account_id),
        amount bigint NOT NULL CHECK (amount > 0),
        ref_type text NOT NULL CHECK (ref_type IN ('channel_request', 'work_order', 'assignment', 'manual')),
        ref_id text NOT NULL CHECK (length(ref_id) BETWEEN 1 AND 200),
        status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'CONSUMED', 'RELEASED', 'EXPIRED')),
        consumed_amount bigint NOT NULL DEFAULT 0,
        shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0 AND shortfall <= amount),
        override_reason text NOT NULL DEFAULT '',
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        settled_at timestamptz,
        actor text NOT NULL DEFAULT '',
        settled_by text NOT NULL DEFAULT '',
        settle_reason text NOT NULL DEFAULT '',
        idempotency_key text NOT NULL DEFAULT '',
        CHECK (consumed_amount >= 0 AND consumed_amount <= amount),
        CHECK ((status = 'CONSUMED') = (consumed_amount > 0)),
        CHECK ((status = 'ACTIVE') = (settled_at IS NULL)),
        CHECK ((shortfall > 0) = (override_reason <> ''))
    )
    """,
    """
    CREATE UNIQUE INDEX reservations_one_active ON reservations (tenant_id, account_id, ref_type, ref_id)
        WHERE status = 'ACTIVE'
    """,
    "CREATE INDEX reservations_due ON reservations (tenant_id, expires_at, id) WHERE status = 'ACTIVE'",
    "CREATE INDEX reservations_recent ON reservations (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX reservations_account ON reservations (account_id, created_at DESC, id DESC)",
    "CREATE INDEX reservations_ref ON reservations (tenant_id, ref_type, ref_id)",
    """
    CREATE TABLE credit_ledger (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES wallets (account_id),
        seq bigint NOT NULL CHECK (seq > 0),
        kind text NOT NULL CHECK (kind IN ('GRANT', 'TOPUP', 'REFILL', 'RESERVE', 'CONSUME', 'RELEASE', 'EXPIRE',
                                           'ADJUSTMENT')),
        amount bigint NOT NULL CHECK (amount > 0),
        reservation_id uuid REFERENCES reservations (id),
        business_ref text NOT NULL DEFAULT '',
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        idempotency_key text NOT NULL DEFAULT '',
        granted_after bigint NOT NULL CHECK (granted_after >= 0),
        consumed_after bigint NOT NULL CHECK (consumed_after >= 0),
        reserved_after bigint NOT NULL CHECK (reserved_after >= 0),
        overdraft_after bigint NOT NULL CHECK (overdraft_after >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT credit_ledger_account_seq UNIQUE (account_id, seq),
        CHECK ((kind IN ('RESERVE', 'CONSUME', 'RELEASE', 'EXPIRE')) <= (reservation_id IS NOT NULL)),
        CHECK ((kind IN ('GRANT', 'TOPUP', 'REFILL')) <= (reservation_id IS NULL))
    )
    """,
    "CREATE INDEX credit_ledger_timeline ON credit_ledger (account_id, created_at DESC, seq DESC)",
    "CREATE INDEX credit_ledger_reservation ON credit_ledger (reservation_id) WHERE reservation_id IS NOT NULL",
    """
    CREATE TABLE idempotency_keys (
        tenant_id uuid NOT NULL,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
        operation text NOT NULL,
        request_hash bytea NOT NULL CHECK (length(request_hash) = 32),   -- sha256 of operation + request
        request jsonb NOT NULL,                                         -- the compared fields, as sent
        response bytea,                                                 -- the serialized original response,
        ledger_entry_id uuid REFERENCES credit_ledger (id),             -- or the credit operation's last entry,
        error jsonb,                                                    -- or the original failure
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, key),
        CHECK (num_nonnulls(response, ledger_entry_id, error) <= 1)
    )
    """,
    """
    CREATE TABLE usage_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        event_id text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
        account_id uuid REFERENCES billing_accounts (id),
        kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
        quantity bigint NOT NULL CHECK (quantity >= 0),
        ref_type text NOT NULL DEFAULT '',
        ref_id text NOT NULL DEFAULT '',
        occurred_at timestamptz NOT NULL,
        source text NOT NULL DEFAULT '',
        recorded_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT usage_events_event UNIQUE (tenant_id, event_id)
    )
    """,
    "CREATE INDEX usage_events_account ON usage_events (account_id, occurred_at DESC, id DESC)",
    # Account changes that are not money: creation, policy/status changes, overrides (audit).
    """
    CREATE TABLE account_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        kind text NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        trace_id text NOT NULL DEFAULT '',
        occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX account_events_account ON account_events (account_id, occurred_at DESC, id DESC)",
    """
    CREATE FUNCTION billing_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
        FOR EACH ROW EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER credit_ledger_no_truncate BEFORE TRUNCATE ON credit_ledger
        FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER account_events_append_only BEFORE UPDATE OR DELETE ON account_events
        FOR EACH ROW EXECUTE FUNCTION billing_append_only()
    """,
    """
    CREATE TRIGGER account_events_no_truncate BEFORE TRUNCATE ON account_events
        FOR EACH STATEMENT EXECUTE FUNCTION billing_append_only()
    """,
    # The state machine, enforced where no code path can skip it.
    """
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
    """,
    """
    CREATE TRIGGER reservations_transition BEFORE UPDATE OR DELETE ON reservations
        FOR EACH ROW EXECUTE FUNCTION reservations_transition()
    """,
    """
    CREATE TRIGGER reservations_no_truncate BEFORE TRUNCATE ON reservations
        FOR EACH STATEMENT EXECUTE FUNCTION reservations_transition()
    """,
]

# The credit operations, one function each, so that an operation is ONE round trip: called
# in autocommit (the credit RPCs) the lock on the balance row lasts from its SELECT ... FOR
# UPDATE to the commit inside the database, never across a client round trip; called inside
# a caller's transaction (event reactions, the release gate, refills) it behaves the same.
# Each statement of a plpgsql function takes a fresh snapshot, so every check after the lock
# sees every committed change. The decisions mirror domain/wallet.py's rules (the reason
# codes are the outcomes); the functions return one billing_op_result row per ledger entry
# written, or one row with the refusal.
FUNCTIONS_UP = [
    """
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
    """,
    # Claims an idempotency key (false: it exists — a retry, or a twin that committed first;
    # a twin still running is waited for on the primary key).
    """
    CREATE FUNCTION billing_claim(p_key text, p_operation text, p_hash bytea, p_request jsonb) RETURNS boolean
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, request)
        VALUES (NULLIF(current_setting('app.tenant_id', true), '')::uuid, p_key, p_operation, p_hash, p_request)
        ON CONFLICT DO NOTHING;
        RETURN FOUND;
    END $$
    """,
    """
    CREATE FUNCTION billing_refused(p_key text, p_claimed boolean, p_outcome text, p_detail jsonb)
    RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    BEGIN
        IF p_claimed THEN  -- a retry with the key fails the same way
            UPDATE idempotency_keys SET error = jsonb_build_object('outcome', p_outcome, 'detail', p_detail)
            WHERE key = p_key;
        END IF;
        RETURN QUERY SELECT p_outcome, p_detail, NULL::text, NULL::text, NULL::bigint, NULL::text, NULL::text,
            NULL::text, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::text,
            NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint,
            NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
            NULL::bigint, NULL::timestamptz, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint;
    END $$
    """,
    # The rows an operation answers: its ledger entries (ids given), with the reservation
    # and the balances after the last one; records the key's answer (its last entry).
    """
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
    """,
    """
    CREATE FUNCTION billing_grant(
        p_tenant uuid, p_account uuid, p_kind text, p_amount bigint, p_reason text, p_actor text,
        p_business_ref text, p_idempotency_key text, p_entry_id uuid,
        p_claim_operation text, p_claim_hash bytea, p_claim_request jsonb
    ) RETURNS SETOF billing_op_result LANGUAGE plpgsql AS $$
    DECLARE
        claimed boolean := false;
        w wallets%ROWTYPE;
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
        UPDATE wallets SET granted = granted + p_amount, entries = entries + 1, updated_at = now()
        WHERE account_id = p_account RETURNING * INTO w;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM billing_refused(p_idempotency_key, claimed, 'ACCOUNT_NOT_FOUND',
                                                      jsonb_build_object('account_id', p_account));
            RETURN;
        END IF;
        INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, business_ref, actor, reason,
                                   idempotency_key, granted_after, consumed_after, reserved_after, overdraft_after)
        VALUES (p_entry_id, w.tenant_id, w.account_id, w.entries, p_kind, p_amount, p_business_ref, p_actor,
                p_reason, p_idempotency_key, w.granted, w.consumed, w.reserved, w.overdraft);
        RETURN QUERY SELECT * FROM billing_written(p_idempotency_key, claimed, NULL, ARRAY[p_entry_id]);
    END $$
    """,
    """
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
    """,
    # p_take: credits to consume (-1: all of them; 0: none — a release or an expiry); the rest
    # goes back as p_returned_kind (RELEASE or EXPIRE). Lock order: the reservation, then its
    # balance row (reserve and grant lock only a balance row, so no cycle).
    """
    CREATE FUNCTION billing_settle(
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
        entry_ids uuid[] := ARRAY[]::uuid[];
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
        remainder := r.amount - take;
        UPDATE reservations SET status = p_new_status, consumed_amount = take, settled_at = now(),
            settled_by = p_actor, settle_reason = p_reason
        WHERE id = p_reservation;
        UPDATE wallets SET reserved = reserved - r.amount, consumed = consumed + take,
            entries = entries + (take > 0)::int + (remainder > 0)::int, updated_at = now()
        WHERE account_id = r.account_id RETURNING * INTO w;
        IF take > 0 THEN
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_consume_id, w.tenant_id, w.account_id, w.entries - (remainder > 0)::int, 'CONSUME', take,
                    r.id, r.ref_type || ':' || r.ref_id, p_actor, p_reason, p_idempotency_key, w.granted,
                    w.consumed, w.reserved + remainder, w.overdraft);
            entry_ids := entry_ids || p_consume_id;
        END IF;
        IF remainder > 0 THEN
            INSERT INTO credit_ledger (id, tenant_id, account_id, seq, kind, amount, reservation_id, business_ref,
                                       actor, reason, idempotency_key, granted_after, consumed_after, reserved_after,
                                       overdraft_after)
            VALUES (p_return_id, w.tenant_id, w.account_id, w.entries, p_returned_kind, remainder, r.id,
                    r.ref_type || ':' || r.ref_id, p_actor, p_returned_reason, p_idempotency_key, w.granted,
                    w.consumed, w.reserved, w.overdraft);
            entry_ids := entry_ids || p_return_id;
        END IF;
        RETURN QUERY SELECT * FROM billing_written(p_idempotency_key, claimed, p_reservation, entry_ids);
    END $$
    """,
]

FUNCTIONS_DOWN = [
    "DROP FUNCTION billing_settle(uuid, uuid, text, bigint, text, text, text, text, text, boolean, uuid, uuid, text, "
    "bytea, jsonb)",
    "DROP FUNCTION billing_reserve(uuid, uuid, uuid, bigint, text, text, timestamptz, boolean, text, text, text, "
    "text, uuid, uuid, text, bytea, jsonb)",
    "DROP FUNCTION billing_grant(uuid, uuid, text, bigint, text, text, text, text, uuid, text, bytea, jsonb)",
    "DROP FUNCTION billing_written(text, boolean, uuid, uuid[])",
    "DROP FUNCTION billing_refused(text, boolean, text, jsonb)",
    "DROP FUNCTION billing_claim(text, text, bytea, jsonb)",
    "DROP TYPE billing_op_result",
]

DOWN = [
    *FUNCTIONS_DOWN,
    "DROP TABLE account_events",
    "DROP TABLE usage_events",
    "DROP TABLE idempotency_keys",
    "DROP TABLE credit_ledger",
    "DROP TABLE reservations",
    "DROP FUNCTION reservations_transition()",
    "DROP FUNCTION billing_append_only()",
    "DROP TABLE wallets",
    "DROP TABLE billing_accounts",
    "DROP TABLE billing_tenants",
]


def upgrade() -> None:
    for statement in UP + FUNCTIONS_UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
