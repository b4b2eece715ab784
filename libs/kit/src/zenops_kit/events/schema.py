"""DDL of the event infrastructure tables every service database has.

Each service's first Alembic migration executes `EVENT_TABLES_UP` (and its downgrade
`EVENT_TABLES_DOWN`). These tables are not tenant tables: the relay and the consumers
work across tenants, so they carry no row-level security; the rows they hold are envelopes
the service itself wrote or received.
"""

OUTBOX_CHANNEL = "zenops_outbox"

EVENT_TABLES_UP = [
    """
    CREATE TABLE outbox (
        id uuid PRIMARY KEY,                 -- = event_id = Nats-Msg-Id
        subject text NOT NULL,
        event_type text NOT NULL,
        tenant_id uuid,
        envelope bytea NOT NULL,             -- serialized zenops.events.v1.EventEnvelope
        traceparent text,                    -- trace context of the writing transaction
        tracestate text,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text
    )
    """,
    # The relay's scan: unpublished rows in creation order, and nothing else.
    "CREATE INDEX outbox_unpublished ON outbox (created_at) WHERE published_at IS NULL",
    "CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
    # Wake the relay at commit instead of making it poll (NOTIFY is delivered on commit only).
    f"""
    CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()",
    """
    CREATE TABLE inbox (
        consumer text NOT NULL,
        event_id uuid NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
    "CREATE INDEX inbox_processed_at ON inbox (processed_at)",
    """
    CREATE TABLE dead_letters (
        id bigserial PRIMARY KEY,
        consumer text NOT NULL,
        event_id uuid,                       -- NULL when the payload could not be parsed
        subject text NOT NULL,
        event_type text,
        envelope bytea NOT NULL,
        headers jsonb NOT NULL DEFAULT '{}'::jsonb,
        error text NOT NULL,
        deliveries integer NOT NULL,
        stream_sequence bigint,
        created_at timestamptz NOT NULL DEFAULT now(),
        replayed_at timestamptz
    )
    """,
    "CREATE INDEX dead_letters_open ON dead_letters (consumer, created_at) WHERE replayed_at IS NULL",
]

EVENT_TABLES_DOWN = [
    "DROP TABLE dead_letters",
    "DROP TABLE inbox",
    "DROP TRIGGER outbox_notify ON outbox",
    "DROP FUNCTION outbox_notify()",
    "DROP TABLE outbox",
]


def tenant_rls(table: str) -> list[str]:
    """Statements that make `table` visible only to the transaction's tenant (RLS).

    FORCE applies the policy to the table owner too, so the service's own role is bound by it.
    A transaction with no tenant set sees and writes nothing.
    """
    predicate = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})",
    ]
