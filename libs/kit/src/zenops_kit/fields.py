"""Field checks every service shares: ids, bounded text, enum choices. Each raises
InvalidArgument naming the field (one place, so every RPC words its errors alike)."""

from __future__ import annotations

import uuid

from zenops_kit.errors import FieldViolation, InvalidArgument, NotFound


def invalid(field: str, description: str, *, reason: str = "VALIDATION_FAILED") -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", reason=reason, violations=[FieldViolation(field, description)])


def not_found(kind: str, id_: str, *, field: str = "id") -> NotFound:
    """`kind` e.g. "assignment": reason ASSIGNMENT_NOT_FOUND, metadata names the field."""
    return NotFound(
        f"{kind.replace('_', ' ')} {id_} not found",
        reason=f"{kind.upper()}_NOT_FOUND",
        metadata={"field": field, "id": id_},
    )


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return len(value) == 36


def parse_uuid(value: str, field: str) -> str:
    """A required id: canonical lower-case UUID text."""
    if not value:
        raise invalid(field, "is required")
    if not is_uuid(value):
        raise invalid(field, "must be a UUID")
    return value.lower()


def optional_uuid(value: str, field: str) -> str | None:
    """An optional id: None when empty."""
    return parse_uuid(value, field) if value else None


def text(value: str, field: str, *, max_length: int, required: bool = True, min_length: int = 1) -> str:
    """Trimmed text within bounds; '' for an optional empty value. Control characters other
    than newline and tab are refused (they break exports and logs)."""
    value = (value or "").strip()
    if not value:
        if required:
            raise invalid(field, "is required")
        return ""
    if len(value) > max_length:
        raise invalid(field, f"must be at most {max_length} characters")
    if len(value) < min_length:
        raise invalid(field, f"must be at least {min_length} characters")
    if has_control_characters(value):
        raise invalid(field, CONTROL_CHARACTERS)
    return value


CONTROL_CHARACTERS = "must not contain control characters"


def has_control_characters(value: str) -> bool:
    """Control characters other than newline and tab (NUL among them: PostgreSQL cannot store it)."""
    return any(ord(c) < 32 and c not in "\n\t" for c in value) or "\x7f" in value


def choice(value: str, field: str, allowed: dict[int, str] | tuple[str, ...], *, default: str | None = None):
    """An enum value (proto int → name, or a name among `allowed`); `default` when unset."""
    if isinstance(allowed, dict):
        if value == 0 and default is not None:
            return default
        if value not in allowed:
            raise invalid(field, "must be one of " + ", ".join(sorted(allowed.values())).lower())
        return allowed[value]
    if not value and default is not None:
        return default
    if value not in allowed:
        raise invalid(field, "must be one of " + ", ".join(allowed))
    return value
