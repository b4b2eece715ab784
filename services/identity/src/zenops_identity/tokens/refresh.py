"""Refresh tokens: `zr1.<tenant uuid hex>.<43 chars base64url of 32 bytes>`.

Only sha256(token) is stored. A login issues a random token; each rotation's successor is
derived from the spent token — base64url(HMAC-SHA256(pepper, spent token)) — so a second
presentation of the same token within the grace period yields the very same successor
without identity ever storing a token in plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid

PREFIX = "zr1"
_FORMAT = re.compile(r"zr1\.([0-9a-f]{32})\.([A-Za-z0-9_-]{43})")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def new_token(tenant_id: str) -> str:
    return f"{PREFIX}.{uuid.UUID(tenant_id).hex}.{_b64(secrets.token_bytes(32))}"


def successor(pepper: bytes, token: str) -> str:
    tenant_hex = token.split(".")[1]
    return f"{PREFIX}.{tenant_hex}.{_b64(hmac.new(pepper, token.encode('ascii'), hashlib.sha256).digest())}"


def successor_jti(pepper: bytes, successor_token: str) -> str:
    """The `jti` of the access token issued with `successor_token`: derived like the
    successor, so a replay in the grace period re-mints the very same access token."""
    return hmac.new(pepper, b"jti:" + successor_token.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def tenant_of(token: str) -> str | None:
    """The tenant a well-formed token names; None for anything else."""
    match = _FORMAT.fullmatch(token)
    return str(uuid.UUID(match.group(1))) if match else None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()
