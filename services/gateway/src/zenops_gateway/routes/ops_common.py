"""What the ops routes share: the optional `Idempotency-Key` header, paging, the 201
`Location` documentation, and naming ops' field violations as the HTTP request names them.

Ops names fields as its request messages do (`details.pin_code`, `links.assignment_id`,
`size_bytes`, `page.cursor`, `query`, `id`); a route declares how those map onto its body,
query and path (`pin_code`, `assignment_id`, `size`, `query.cursor`, `query.q`,
`path.assignment_id`) with `ops_field_names`, so a 400 or a 409 `IDEMPOTENCY_KEY_REUSED`
names what the caller sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Header

from zenops.common.v1 import common_pb2
from zenops_kit.errors import FieldViolation

from ..errors import UpstreamError, expand_violations

MERGE_PATCH = "application/merge-patch+json"
MAX_IDEMPOTENCY_KEY = 200
IDEMPOTENCY_DOC = (
    "Optional; makes the operation safe to retry: the same key with the same request answers the original "
    "result (also an original failure); with another request it is 409 `IDEMPOTENCY_KEY_REUSED` naming the "
    "differing fields. Keys are per tenant. 1–200 visible ASCII characters (a UUID is a good key)."
)
_KEY_PATTERN = r"^[!-~]+$"  # visible ASCII: no spaces, nothing a proxy could rewrite

OptionalIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
        pattern=_KEY_PATTERN,
        description=IDEMPOTENCY_DOC,
    ),
]

CREATED = {201: {"headers": {"Location": {"schema": {"type": "string"}}}}}

# Every route: the paging fields and the key travel outside the body.
COMMON_FIELDS = {"page": "query", "idempotency_key": "header.Idempotency-Key"}


def page(limit: int | None, cursor: str | None) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(limit=limit or 0, cursor=cursor or "")


def rename_field(field: str, renames: dict[str, str]) -> str:
    """`field` with its longest matching prefix (a whole path segment) replaced; a prefix
    mapped to "" is dropped (`details.city` → `city`; `details` alone → `body`)."""
    best = ""
    for prefix in renames:
        if len(prefix) > len(best) and (field == prefix or field.startswith((prefix + ".", prefix + "["))):
            best = prefix
    if not best:
        return field
    rest = field[len(best) :]
    target = renames[best]
    # A dropped prefix names the body itself when nothing follows it (`links` → `body`).
    return (target + rest) if target else (rest.lstrip(".") or "body")


@contextmanager
def ops_field_names(renames: dict[str, str] | None = None) -> Iterator[None]:
    """Rename the field violations of an ops error (also the differing fields of
    `IDEMPOTENCY_KEY_REUSED`) as the HTTP request names them; the error still propagates to
    the central handler in errors.py."""
    try:
        yield
    except UpstreamError as err:
        table = {**COMMON_FIELDS, **(renames or {})}
        for i, v in enumerate(expand_violations(err.detail)):
            err.detail.violations[i] = FieldViolation(rename_field(v.field, table), v.description)
        raise


def query_fields(*names: str, **renamed: str) -> dict[str, str]:
    """Request fields that are query parameters: `query_fields("status", query="q")` →
    {"status": "query.status", "query": "query.q"}."""
    return {**{n: f"query.{n}" for n in names}, **{k: f"query.{v}" for k, v in renamed.items()}}
