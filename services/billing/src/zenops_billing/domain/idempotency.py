"""Idempotency keys: the request fingerprint and what differs between two requests.

A key is bound to the operation and the request fields as the client sent them (defaults
not filled in), so a retry much later still matches even if a default changed meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import re

from zenops_kit.errors import AlreadyExists

from .wallet import invalid

IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
# Printable ASCII without spaces: what fits an HTTP header and a log line unchanged.
KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
# Values a JSON round trip returns unchanged (a float may not: 1e400, -0.0).
_JSON_SCALARS = (str, int, bool, type(None))


def check_key(key: str, field_name: str = "idempotency_key") -> str:
    if key and not KEY.fullmatch(key):
        raise invalid(field_name, "must be 1-200 printable ASCII characters without spaces")
    return key


def canonical(request: dict) -> dict:
    """`request` as JSON would return it (what the database stores and gives back). Flat
    str/int/bool/None fields (every RPC's request) come back as they are: no round trip."""
    if all(type(k) is str and type(v) in _JSON_SCALARS for k, v in request.items()):
        return dict(request)
    return json.loads(json.dumps(request, sort_keys=True, default=str))


def fingerprint(operation: str, request: dict) -> bytes:
    raw = json.dumps(
        {"operation": operation, "request": canonical(request)}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(raw.encode()).digest()


def mismatched_fields(stored_operation: str, stored: dict, operation: str, request: dict) -> list[str]:
    """Names of the request fields that differ from the stored request (sorted)."""
    if stored_operation != operation:
        return ["operation"]
    new = canonical(request)
    return sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))


def key_reused(key: str, stored_operation: str, fields: list[str]) -> AlreadyExists:
    return AlreadyExists(
        "this idempotency key was used for a different request (" + ", ".join(fields) + ")",
        reason=IDEMPOTENCY_KEY_REUSED,
        metadata={"fields": ",".join(fields), "operation": stored_operation, "idempotency_key": key},
    )
