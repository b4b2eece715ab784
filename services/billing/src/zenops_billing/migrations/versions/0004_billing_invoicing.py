"""GST service invoices: the supplier's settings, invoices and their lines, numbering series,
adjustments, credit notes, payments, payment proofs, documents and the invoice audit trail.

- `invoice_series`: one row per (tenant, kind, financial year); a number is taken by
  incrementing it in the issuing transaction (the row lock orders concurrent issues; a
  rolled-back issue gives its number back), so numbers are unique and gapless per financial
  year (April–March, Asia/Kolkata) and never reused (a void keeps its number). The series
  also remembers its last issued date, so dates stay in number order.
- Money columns are integer paise and never negative; an invoice's totals are stored as
  computed at the time (lines carry their own GST split).
- `invoice_events`: append-only audit (created, line added, issued, voided, adjusted,
  credited, paid, proof submitted/confirmed/rejected), with actor and trace id.
- `payments`: unique per (tenant, method, reference) — a retried manual payment or a
  provider payment seen twice is recorded once.
- `invoice_lines.assignment_id` / `place_override`: what the place of supply is derived from
  (the assignment's property, via ops) or the request's override; `voided`: the line's
  invoice was voided, so its ref may be billed again.
- `invoice_channels`: channel → tenant for portal callers (global, ids only).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from zenops_kit.events.schema import tenant_rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TENANT_TABLES = (
    "billing_settings",
    "invoice_series",
    "invoices",
    "invoice_lines",
    "invoice_adjustments",
    "credit_notes",
    "payments",
    "payment_proofs",
    "invoice_documents",
    "invoice_events",
)
STATE = "'^[A-Z]{2}$'"
GSTIN = "'^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$'"
NUMBER = "'^[A-Za-z0-9/-]{1,16}$'"

UP = [
    f"""
    CREATE TABLE billing_settings (
        tenant_id uuid PRIMARY KEY,
        legal_name text NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 200),
        gstin text NOT NULL CHECK (gstin ~ {GSTIN}),
        state text NOT NULL CHECK (state ~ {STATE}),
        address text NOT NULL DEFAULT '' CHECK (length(address) <= 1000),
        invoice_prefix text NOT NULL CHECK (invoice_prefix ~ '^[A-Za-z0-9]{{1,6}}$'),
        payment_terms_days int NOT NULL DEFAULT 30 CHECK (payment_terms_days BETWEEN 0 AND 365),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE invoice_series (
        tenant_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
        financial_year int NOT NULL CHECK (financial_year BETWEEN 2000 AND 9999),   -- the April it starts in
        last_value int NOT NULL CHECK (last_value >= 1),
        last_date date NOT NULL,
        PRIMARY KEY (tenant_id, kind, financial_year)
    )
    """,
    f"""
    CREATE TABLE invoices (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        account_id uuid NOT NULL REFERENCES billing_accounts (id),
        number text CHECK (number ~ {NUMBER}),
        status text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT', 'ISSUED', 'PARTIALLY_PAID', 'PAID', 'VOID')),
        invoice_date date,
        due_date date,
        -- '' only on a draft whose recipient's state is not known yet (settled at issue)
        place_of_supply text NOT NULL DEFAULT '' CHECK (place_of_supply ~ {STATE} OR (place_of_supply = ''
                                                                                     AND status IN ('DRAFT', 'VOID'))),
        -- the place of supply the request gave ('' = derived from the recipient)
        place_override text NOT NULL DEFAULT '' CHECK (place_override = '' OR place_override ~ {STATE}),
        supplier_gstin text NOT NULL DEFAULT '',
        recipient_gstin text NOT NULL DEFAULT '',
        taxable_paise bigint NOT NULL DEFAULT 0 CHECK (taxable_paise >= 0),
        cgst_paise bigint NOT NULL DEFAULT 0 CHECK (cgst_paise >= 0),
        sgst_paise bigint NOT NULL DEFAULT 0 CHECK (sgst_paise >= 0),
        igst_paise bigint NOT NULL DEFAULT 0 CHECK (igst_paise >= 0),
        round_off_paise bigint NOT NULL DEFAULT 0 CHECK (round_off_paise BETWEEN -50 AND 50),
        total_paise bigint NOT NULL DEFAULT 0 CHECK (total_paise >= 0),
        adjusted_paise bigint NOT NULL DEFAULT 0 CHECK (adjusted_paise >= 0),
        credited_paise bigint NOT NULL DEFAULT 0 CHECK (credited_paise >= 0),
        paid_paise bigint NOT NULL DEFAULT 0 CHECK (paid_paise >= 0),
        channel_id uuid,
        void_reason text NOT NULL DEFAULT '',
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        issued_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        version bigint NOT NULL DEFAULT 1,
        CONSTRAINT invoices_number_unique UNIQUE (tenant_id, number),
        CONSTRAINT invoices_tenant_id UNIQUE (tenant_id, id),
        CHECK ((status = 'DRAFT') = (number IS NULL AND invoice_date IS NULL) OR status = 'VOID'),
        CHECK (adjusted_paise + credited_paise + paid_paise <= total_paise)
    )
    """,
    "CREATE INDEX invoices_page ON invoices (tenant_id, created_at DESC, id DESC)",
    "CREATE INDEX invoices_account ON invoices (tenant_id, account_id, status)",
    f"""
    CREATE TABLE invoice_lines (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        position int NOT NULL CHECK (position >= 1),
        description text NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
        sac text NOT NULL DEFAULT '997224' CHECK (sac ~ '^[0-9]{{4,8}}$'),
        quantity numeric(12, 3) NOT NULL CHECK (quantity > 0),
        unit_price_paise bigint NOT NULL CHECK (unit_price_paise >= 0),
        discount_paise bigint NOT NULL DEFAULT 0 CHECK (discount_paise >= 0),
        taxable_paise bigint NOT NULL CHECK (taxable_paise >= 0),
        cgst_paise bigint NOT NULL CHECK (cgst_paise >= 0),
        sgst_paise bigint NOT NULL CHECK (sgst_paise >= 0),
        igst_paise bigint NOT NULL CHECK (igst_paise >= 0),
        total_paise bigint NOT NULL CHECK (total_paise >= 0),
        place_of_supply text NOT NULL DEFAULT '' CHECK (place_of_supply = '' OR place_of_supply ~ {STATE}),
        ref_type text NOT NULL DEFAULT 'manual'
            CHECK (ref_type IN ('assignment', 'work_order', 'channel_request', 'manual')),
        ref_id text NOT NULL DEFAULT '',
        -- the assignment whose property fixes the place of supply ('' when none is known)
        assignment_id text NOT NULL DEFAULT '' CHECK (length(assignment_id) <= 100),
        -- the place of supply the request gave for this line ('' = derived)
        place_override text NOT NULL DEFAULT '' CHECK (place_override = '' OR place_override ~ {STATE}),
        -- the line's invoice was voided: its ref may be billed again
        voided boolean NOT NULL DEFAULT false,
        CONSTRAINT invoice_lines_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id),
        CONSTRAINT invoice_lines_position UNIQUE (invoice_id, position)
    )
    """,
    # A ref (assignment, work order, channel request) is billed on one live invoice line once
    # (a voided invoice's lines no longer count).
    "CREATE UNIQUE INDEX invoice_lines_ref ON invoice_lines (tenant_id, ref_type, ref_id) "
    "WHERE ref_type <> 'manual' AND NOT voided",
    "CREATE INDEX invoice_lines_of ON invoice_lines (invoice_id, position)",
    """
    CREATE TABLE invoice_adjustments (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind IN ('discount', 'write_off')),
        amount_paise bigint NOT NULL CHECK (amount_paise > 0),
        reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
        actor text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT invoice_adjustments_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
    )
    """,
    f"""
    CREATE TABLE credit_notes (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        number text NOT NULL CHECK (number ~ {NUMBER}),
        taxable_paise bigint NOT NULL CHECK (taxable_paise > 0),
        cgst_paise bigint NOT NULL CHECK (cgst_paise >= 0),
        sgst_paise bigint NOT NULL CHECK (sgst_paise >= 0),
        igst_paise bigint NOT NULL CHECK (igst_paise >= 0),
        total_paise bigint NOT NULL CHECK (total_paise > 0),
        reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
        actor text NOT NULL,
        issued_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT credit_notes_number_unique UNIQUE (tenant_id, number),
        CONSTRAINT credit_notes_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
    )
    """,
    """
    CREATE TABLE payments (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        amount_paise bigint NOT NULL CHECK (amount_paise > 0),
        method text NOT NULL CHECK (method IN ('bank_transfer', 'upi', 'card', 'cash', 'provider')),
        reference text NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
        provider text NOT NULL DEFAULT '' CHECK (provider IN ('', 'razorpay', 'stripe')),
        received_at timestamptz NOT NULL,
        recorded_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT payments_reference_unique UNIQUE (tenant_id, method, provider, reference),
        CONSTRAINT payments_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
    )
    """,
    """
    CREATE TABLE payment_proofs (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        document_id uuid NOT NULL,
        note text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
        amount_paise bigint NOT NULL CHECK (amount_paise > 0),
        reference text NOT NULL DEFAULT '' CHECK (length(reference) <= 200),
        status text NOT NULL DEFAULT 'SUBMITTED' CHECK (status IN ('SUBMITTED', 'CONFIRMED', 'REJECTED')),
        submitted_by text NOT NULL,
        reviewed_by text,
        review_reason text NOT NULL DEFAULT '',
        payment_id uuid REFERENCES payments (id),
        created_at timestamptz NOT NULL DEFAULT now(),
        reviewed_at timestamptz,
        CONSTRAINT payment_proofs_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id),
        CHECK ((status = 'CONFIRMED') = (payment_id IS NOT NULL)),
        CHECK ((status = 'SUBMITTED') = (reviewed_at IS NULL))
    )
    """,
    """
    CREATE TABLE invoice_documents (
        tenant_id uuid NOT NULL,
        invoice_id uuid PRIMARY KEY,
        content_type text NOT NULL,
        filename text NOT NULL,
        content bytea NOT NULL,
        sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT invoice_documents_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
    )
    """,
    """
    CREATE TABLE invoice_events (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        invoice_id uuid NOT NULL,
        kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        detail jsonb NOT NULL DEFAULT '{}',
        trace_id text NOT NULL DEFAULT '',
        occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CONSTRAINT invoice_events_invoice_fk FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
    )
    """,
    "CREATE INDEX invoice_events_of ON invoice_events (invoice_id, occurred_at)",
    "CREATE INDEX payments_of ON payments (invoice_id, created_at)",
    "CREATE INDEX payment_proofs_of ON payment_proofs (tenant_id, invoice_id, created_at)",
    # Which tenant owns a channel whose partners see invoices (portal callers name only their
    # channel). Global, no RLS: ids only, like billing_tenants.
    """
    CREATE TABLE invoice_channels (
        channel_id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # The audit trail, payments and credit notes are never changed or removed.
    *(
        f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION billing_append_only()"
        for t in ("invoice_events", "payments", "credit_notes", "invoice_adjustments")
    ),
]

DOWN = ["DROP TABLE IF EXISTS invoice_channels", *(f"DROP TABLE IF EXISTS {t}" for t in reversed(TENANT_TABLES))]


def upgrade() -> None:
    for statement in UP:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls(table):
            op.execute(statement)


def downgrade() -> None:
    for statement in DOWN:
        op.execute(statement)
