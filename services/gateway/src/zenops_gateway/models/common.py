"""Conventions every area's models share: UTC ISO-8601 timestamps, lower-case enum values,
cursor pagination, bounded secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic_core import PydanticCustomError

# Bodies are bounded by the body-size middleware; these bound single fields so that a bad
# value is named (`password`, `email`) instead of failing the whole body.
MAX_SECRET = 1024  # the services apply their own, stricter policies (passwords: 128)
MAX_EMAIL = 320  # RFC 5321: 64 local part + @ + 255 domain
MAX_CURSOR = 1024
MAX_PAGE = 500


def timestamp(message: Message, field: str) -> datetime | None:
    """A google.protobuf.Timestamp field as an aware UTC datetime; None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    """`TENANT_KIND_INTERNAL` → `internal` (the JSON spelling of every enum)."""
    name = enum_type.Name(value)
    if not name.startswith(prefix) or name.endswith("_UNSPECIFIED"):
        raise ValueError(f"unexpected {enum_type.DESCRIPTOR.name} value {name}")
    return name.removeprefix(prefix).lower()


def enum_value(enum_type: Any, name: str, prefix: str) -> int:
    """`internal` → TENANT_KIND_INTERNAL."""
    return enum_type.Value(prefix + name.upper())


def or_none(value: str) -> str | None:
    """Proto3 strings are never null: an empty one means "not set"."""
    return value or None


def _bounded(max_length: int):
    def check(value: Any) -> Any:
        # Checked before SecretStr wraps it, so the message speaks of characters.
        if isinstance(value, str) and len(value) > max_length:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": max_length},
            )
        return value

    return check


# A password or token in a request body: never printed (repr shows ********).
Secret = Annotated[SecretStr, BeforeValidator(_bounded(MAX_SECRET)), Field(max_length=MAX_SECRET)]

Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_PAGE, description="Page size (the service may cap it lower; default: the service's)."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR, description="`next_cursor` of the previous page; absent for the first page."),
]


# Bounds: far above any real figure, far below int64 and JavaScript's 2^53 (so a figure
# survives every JSON parser exactly). The service still decides what is allowed.
MAX_CREDITS = 1_000_000_000_000
MAX_PAISE = 1_000_000_000_000_000


def _utc(value: datetime) -> datetime:
    # Offsets near the ends of the calendar can overflow when moved to UTC; that is a 400 on
    # the field, not a 500 (protobuf Timestamps span years 1-9999).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "Must be between years 1 and 9999 in UTC") from None


# A timestamp in a request: must carry an offset (naive times are ambiguous); kept in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]


class Strict(BaseModel):
    """Request bodies: unknown members are an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


def to_timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts
