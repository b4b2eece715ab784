"""Keys derived from ZENOPS_KEY_ENCRYPTION_SECRET (HKDF-SHA256, one label per purpose, so
no derived key can stand in for another)."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"zenops-identity"
SIGNING_KEY_ENCRYPTION = b"zenops-identity/signing-key-encryption/v1"
REFRESH_SUCCESSOR_PEPPER = b"zenops-identity/refresh-successor/v1"


def derive(secret: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=label).derive(secret.encode("utf-8"))


def signing_key_cipher(secret: str, decrypt_only: Sequence[str] = ()) -> MultiFernet:
    """Encrypts private signing keys at rest (AES-128-CBC + HMAC-SHA256, authenticated)
    under `secret`; decrypts what `secret` or any of `decrypt_only` encrypted (rotation)."""
    return MultiFernet([_fernet(s) for s in (secret, *decrypt_only)])


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive(secret, SIGNING_KEY_ENCRYPTION)))


def encrypted_under(secret: str, blob: bytes) -> bool:
    """Whether `blob` is a signing key encrypted under `secret` itself."""
    try:
        _fernet(secret).decrypt(blob)
    except InvalidToken:
        return False
    return True


def refresh_pepper(secret: str) -> bytes:
    return derive(secret, REFRESH_SUCCESSOR_PEPPER)
