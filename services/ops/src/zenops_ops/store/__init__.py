"""Ops' SQL: one module per area; functions take a connection of the caller's transaction
(scoped to the tenant, and the channel for portal users: zenops_kit.rls) and do one round trip
where they can."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError violated (asyncpg reports it)."""
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    return getattr(cause, "constraint_name", None)


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig or exc
    return getattr(cause, "sqlstate", None)
