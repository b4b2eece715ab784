"""Cursor pagination of every List RPC (zenops.common.v1.PageRequest / PageInfo): opaque
cursors that encode the position after the last item.

A cursor comes back from the client, so it is input like any other: `decode_cursor` checks
its shape and, given `types`, each position value (a UUID, an aware timestamp, an integer)
before any of it reaches SQL — a tampered cursor is INVALID_ARGUMENT naming the field,
never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from .errors import FieldViolation, InvalidArgument


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", violations=[FieldViolation(field, description)])


DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Far beyond any cursor we issue (a few keys of at most a few hundred characters).
MAX_CURSOR_CHARS = 4096
MAX_POSITION_CHARS = 1024
_INT64 = 2**63

PositionType = Literal["text", "uuid", "timestamp", "int"]
_POSITION_TYPES = ("text", "uuid", "timestamp", "int")


def page_limit(limit: int) -> int:
    if limit < 0:
        raise _invalid("page.limit", "must not be negative")
    return min(limit or DEFAULT_LIMIT, MAX_LIMIT)


def encode_cursor(kind: str, position: list[str]) -> str:
    raw = json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _checked(value: str, kind: PositionType) -> str:
    """`value` in canonical form if it is a `kind`; ValueError otherwise."""
    if kind == "text":
        return value
    if kind == "uuid":
        return str(uuid.UUID(value))
    if kind == "timestamp":
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:  # we only ever issue aware (UTC) times
            raise ValueError("naive timestamp")
        return at.isoformat()
    number = int(value)  # "int"
    if not -_INT64 <= number < _INT64:
        raise ValueError("out of range")
    return str(number)


def decode_cursor(
    cursor: str, kind: str, arity: int, *, types: Sequence[PositionType] | None = None, field: str = "page.cursor"
) -> list[str] | None:
    """The position a cursor of `kind` encodes (None for the first page): `arity` strings,
    each free of NUL and at most MAX_POSITION_CHARS long, and — with `types` (one per value)
    — each a valid UUID/timestamp/integer, returned in canonical form. Anything else is
    INVALID_ARGUMENT on `field`."""
    if not cursor:
        return None
    if types is not None and (len(types) != arity or not set(types) <= set(_POSITION_TYPES)):
        raise TypeError(f"types must name one of {_POSITION_TYPES} per position value")
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = data["p"]
        if data["k"] != kind or not isinstance(position, list) or len(position) != arity:
            raise ValueError("wrong kind or shape")
        if not all(isinstance(p, str) and len(p) <= MAX_POSITION_CHARS and "\x00" not in p for p in position):
            raise ValueError("bad value")
        if types is not None:
            position = [_checked(p, t) for p, t in zip(position, types, strict=True)]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise _invalid(field, "is not a cursor returned by this list") from None
    return position
