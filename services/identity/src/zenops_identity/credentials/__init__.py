"""Credential rules of the identity service: password policy, email normalisation, password hashing.

Pure and I/O-free apart from reading the shipped common-password list; hashing runs in worker threads.
"""

from .hashing import PasswordHasher
from .policy import (
    MAX_LENGTH,
    MIN_LENGTH,
    check_password,
    common_password_count,
    is_common,
    normalize_email,
    validate_password,
)

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "PasswordHasher",
    "check_password",
    "common_password_count",
    "is_common",
    "normalize_email",
    "validate_password",
]
