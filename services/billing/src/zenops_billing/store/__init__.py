"""Storage: SQL against billing's own database (SQLAlchemy Core text, no ORM), nothing else.

Functions take the caller's connection so an operation's reads, writes, ledger entries and
idempotency record share one transaction. Tenant tables are only touched inside
`zenops_kit.db.tenant_tx` (or a kit transaction after `set_tenant`): RLS scopes every
statement to that tenant.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint or unique index an INSERT/UPDATE violated."""
    cause = getattr(exc.orig, "__cause__", None)
    return getattr(cause, "constraint_name", None)


def sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE of a database error, raised through SQLAlchemy or by asyncpg directly."""
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return getattr(exc, "sqlstate", None)
