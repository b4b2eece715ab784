"""The one clock of the service (UTC, aware)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
