"""Signing access tokens (JWS compact, header {alg, typ, kid})."""

from __future__ import annotations

import jwt

from .keys import SigningKey


def mint(key: SigningKey, claims: dict) -> str:
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})
