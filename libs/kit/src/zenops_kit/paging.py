"""Cursor pagination of every List RPC (zenops.common.v1.PageRequest / PageInfo): opaque
cursors that encode the position after the last item."""

from __future__ import annotations

import base64
import binascii
import json

from .errors import FieldViolation, InvalidArgument


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", violations=[FieldViolation(field, description)])


DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def page_limit(limit: int) -> int:
    if limit < 0:
        raise _invalid("page.limit", "must not be negative")
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


def encode_cursor(kind: str, position: list[str]) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, arity: int) -> list[str] | None:
    """The position a cursor of `kind` encodes (None for the first page)."""
    if not cursor:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = data["p"]
        if data["k"] != kind or not isinstance(position, list) or len(position) != arity:
            raise ValueError
        if not all(isinstance(p, str) for p in position):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _invalid("page.cursor", "is not a cursor returned by this list") from None
    return position
