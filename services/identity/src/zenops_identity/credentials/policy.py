"""Password policy (OWASP ASVS 5.0 §6.2) and email normalisation: pure rules, no I/O but the shipped list.

Rules, each reported separately so the user sees every problem at once:
- 12 to 128 characters, counted as Unicode code points after NFC normalisation (ASVS 6.2.1 asks for 8 and
  recommends 15; 6.2.9 asks that 64 be allowed). Nothing is ever truncated (6.2.8).
- No composition rules (6.2.5): any characters, spaces included, so passphrases work.
- Not in the shipped list of common/breached passwords (6.2.4, 6.2.12), compared case-insensitively.
- Not containing context-specific words (6.2.11): the email's local part and the user's name.
Violation descriptions never repeat the password nor the part of it that matched.

NOTICE: common-passwords.txt.gz is Django's list of 20,000 common passwords (19,640 unique lower-cased
entries), BSD-3-Clause, Copyright (c) Django Software Foundation and individual contributors; it was
created by Royce Williams from breach corpora (https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce).
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from functools import cache
from importlib import resources

from email_validator import EmailNotValidError, validate_email

from zenops_kit.errors import FieldViolation, InvalidArgument

MIN_LENGTH = 12
MAX_LENGTH = 128
# RFC 3696 errata 1690 / RFC 5321: a usable address is at most 254 characters.
EMAIL_MAX_LENGTH = 254
# Name parts and email local parts shorter than this match too many unrelated passwords.
MIN_CONTEXT_WORD_LENGTH = 3

_COMMON_PASSWORDS_RESOURCE = "common-passwords.txt.gz"
# Name parts are split on anything that is not a letter or digit ("Mary-Jane O'Neil" → mary, jane, o, neil).
_NAME_SEPARATORS = re.compile(r"[\W_]+")


def _fold(text: str) -> str:
    """The form used for case-insensitive comparisons."""
    return unicodedata.normalize("NFC", text).casefold()


@cache
def _common_passwords() -> frozenset[str]:
    data = resources.files(__package__).joinpath(_COMMON_PASSWORDS_RESOURCE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(_fold(line.strip()) for line in lines if line.strip())


def common_password_count() -> int:
    """How many distinct entries the shipped list has (loads it if needed)."""
    return len(_common_passwords())


def is_common(password: str) -> bool:
    """True when the password is in the shipped common/breached list (case-insensitive)."""
    return _fold(password) in _common_passwords()


def _name_words(display_name: str) -> set[str]:
    folded = _fold(display_name).strip()
    words = {part for part in _NAME_SEPARATORS.split(folded) if len(part) >= MIN_CONTEXT_WORD_LENGTH}
    whole = " ".join(folded.split())
    if len(whole) >= MIN_CONTEXT_WORD_LENGTH:
        words.add(whole)
    return words


def _email_local_part(email: str) -> str:
    local, at, _ = email.strip().rpartition("@")
    return _fold(local if at else email.strip())


def check_password(
    password: str, *, email: str = "", display_name: str = "", field: str = "password"
) -> list[FieldViolation]:
    """Every rule the password fails (empty list: acceptable)."""
    normalized = unicodedata.normalize("NFC", password)
    violations: list[FieldViolation] = []
    length = len(normalized)
    if length < MIN_LENGTH:
        violations.append(FieldViolation(field, f"must be at least {MIN_LENGTH} characters long"))
    elif length > MAX_LENGTH:
        violations.append(FieldViolation(field, f"must be at most {MAX_LENGTH} characters long"))
    folded = normalized.casefold()
    if is_common(normalized):
        violations.append(
            FieldViolation(field, "is too common: it appears in a list of frequently used or breached passwords")
        )
    local = _email_local_part(email)
    if len(local) >= MIN_CONTEXT_WORD_LENGTH and local in folded:
        violations.append(FieldViolation(field, "must not contain the part of your email address before the @"))
    if any(word in folded for word in _name_words(display_name)):
        violations.append(FieldViolation(field, "must not contain your name or a part of it"))
    return violations


def validate_password(password: str, *, email: str = "", display_name: str = "", field: str = "password") -> None:
    """Raise InvalidArgument (reason PASSWORD_POLICY) carrying every failed rule."""
    violations = check_password(password, email=email, display_name=display_name, field=field)
    if violations:
        raise InvalidArgument("password does not meet the policy", reason="PASSWORD_POLICY", violations=violations)


def _invalid_email(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(
        "invalid email address", reason="VALIDATION_FAILED", violations=[FieldViolation(field, description)]
    )


def normalize_email(email: str, *, field: str = "email") -> str:
    """The syntactically valid, lower-cased form of `email` (no DNS lookup); InvalidArgument otherwise.

    The reserved .test and .local domains are accepted (test and on-premises deployments; the local default
    bootstrap admin is admin@zenops.local) although email_validator calls them not globally deliverable;
    other special-use names (localhost, invalid, onion, arpa) stay rejected.
    """
    candidate = email.strip()
    if not candidate:
        raise _invalid_email(field, "is required")
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise _invalid_email(field, f"must be at most {EMAIL_MAX_LENGTH} characters long")
    is_local = candidate.lower().endswith(".local")
    if is_local:
        # Validate the same labels under .test (which test_environment allows), then put .local back.
        candidate = candidate[: -len("local")] + "test"
    try:
        normalized = validate_email(candidate, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as err:
        raise _invalid_email(field, f"is not a valid email address: {err}") from None
    if is_local:
        normalized = normalized[: -len("test")] + "local"
    normalized = normalized.lower()
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise _invalid_email(field, f"must be at most {EMAIL_MAX_LENGTH} characters long")
    return normalized
