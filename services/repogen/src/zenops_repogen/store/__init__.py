"""Repogen's SQL: one module per area; functions take a connection of the caller's transaction
(scoped to the tenant, and the channel for portal users: zenops_kit.rls) and do one round trip
where they can.

Tenancy: every tenant table is under forced RLS; references between them are
tenant-qualified foreign keys ((tenant_id, x_id) → (tenant_id, id)), since PostgreSQL checks
foreign keys without RLS. Snapshots, rules runs, readiness results, the audit trail and
comments only ever get INSERTs (triggers refuse anything else); evidence and field links
change only by being removed, once.
"""

from __future__ import annotations

import json
from decimal import Decimal

from sqlalchemy.exc import IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError violated (asyncpg reports it)."""
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    return getattr(cause, "constraint_name", None)


def dumps(value) -> str:
    """JSON text for a jsonb parameter (decimals as strings, never floats)."""
    return json.dumps(
        value,
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
        default=lambda v: str(v) if isinstance(v, Decimal) else _refuse(v),
    )


def loads(value: str | None):
    """A jsonb column read as text (numbers with a fraction as Decimal: never floats)."""
    return None if value is None else json.loads(value, parse_float=Decimal)


def _refuse(value):
    raise TypeError(f"{type(value).__name__} is not JSON data")
