"""Storage: SQL against identity's own database, nothing else.

Functions take the caller's connection, so an operation's reads, writes, audit row and
outbox event share one transaction. Tenant tables (users, user_roles, sessions,
refresh_tokens, audit_events) are only touched inside `zenops_kit.db.tenant_tx` (RLS);
`tenants` and `signing_keys` are global.
"""

from sqlalchemy.exc import IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint or unique index an INSERT/UPDATE violated."""
    cause = getattr(exc.orig, "__cause__", None)
    return getattr(cause, "constraint_name", None)
