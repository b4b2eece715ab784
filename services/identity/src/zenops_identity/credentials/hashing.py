"""Password hashing: argon2id for every new hash; imported bcrypt hashes verify and report needs_rehash.

The expensive work runs in a worker thread (argon2-cffi and bcrypt release the GIL), so a login never stalls
the event loop; at most `max_concurrent` computations run at once (each argon2id one holds `memory_cost` KiB),
the others wait their turn, so a burst of logins cannot exhaust the process's memory. Verification never raises for a wrong password or a bad stored hash: it answers False, and
every False path costs about one argon2id verification so timing does not tell the cases apart.

Passwords are NFC-normalised before argon2id hashing (NIST SP 800-63B §5.1.1.2), so the same characters typed
on different systems verify; the policy counts length on the same form. Nothing is truncated.
"""

from __future__ import annotations

import asyncio
import base64
import os
import unicodedata

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .policy import MAX_LENGTH

# OWASP Password Storage Cheat Sheet minimum for argon2id: m=19 MiB, t=2, p=1.
MIN_MEMORY_COST_KIB = 19456
MIN_TIME_COST = 2
# Longest accepted input, in UTF-8 bytes: MAX_LENGTH code points of at most 4 bytes each.
MAX_PASSWORD_BYTES = MAX_LENGTH * 4
# NFC never shrinks text by more than this factor, so longer inputs are refused before normalising them.
_MAX_RAW_CODE_POINTS = MAX_PASSWORD_BYTES * 4

_ARGON2ID_PREFIX = "$argon2id$"
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt only ever looked at the first 72 bytes; legacy systems truncated silently, so an imported hash of a
# longer password verifies only against those 72 bytes. The successful login re-hashes the full password with
# argon2id (needs_rehash is True for bcrypt), after which nothing is truncated.
_BCRYPT_MAX_BYTES = 72
_SALT_BYTES = 16
_HASH_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


class PasswordHasher:
    def __init__(
        self,
        *,
        memory_cost: int = MIN_MEMORY_COST_KIB,
        time_cost: int = MIN_TIME_COST,
        parallelism: int = 1,
        max_concurrent: int = 4,
    ) -> None:
        if memory_cost < MIN_MEMORY_COST_KIB:
            raise ValueError(
                f"argon2 memory_cost must be at least {MIN_MEMORY_COST_KIB} KiB (OWASP), got {memory_cost}"
            )
        if time_cost < MIN_TIME_COST:
            raise ValueError(f"argon2 time_cost must be at least {MIN_TIME_COST} (OWASP), got {time_cost}")
        if parallelism < 1:
            raise ValueError(f"argon2 parallelism must be at least 1, got {parallelism}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._memory_cost = memory_cost
        self._time_cost = time_cost
        self._parallelism = parallelism
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=_HASH_BYTES,
            salt_len=_SALT_BYTES,
            type=argon2.Type.ID,
        )
        # A well-formed argon2id hash with the current parameters whose digest is random: verifying against it
        # costs exactly a real verification and no password can match it. Built without hashing (no startup cost).
        self._dummy_hash = (
            f"$argon2id$v={argon2.low_level.ARGON2_VERSION}$m={memory_cost},t={time_cost},p={parallelism}"
            f"${_b64(os.urandom(_SALT_BYTES))}${_b64(os.urandom(_HASH_BYTES))}"
        )

    @property
    def parameters(self) -> dict[str, int]:
        return {"memory_cost_kib": self._memory_cost, "time_cost": self._time_cost, "parallelism": self._parallelism}

    async def hash(self, password: str) -> str:
        """An argon2id hash of the (NFC-normalised) password. ValueError beyond MAX_PASSWORD_BYTES, since such a
        password could never verify; the policy rejects it long before (MAX_LENGTH)."""
        secret = self._argon2_secret(password)
        if secret is None:
            raise ValueError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
        return await self._run(self._argon2.hash, secret)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """True only when `password` matches `stored_hash` (argon2id, or imported bcrypt)."""
        matched: bool | None = None  # None: nothing was verified (over-long input, unparsable hash)
        if stored_hash.startswith(_ARGON2ID_PREFIX):
            secret = self._argon2_secret(password)
            if secret is not None:
                matched = await self._run(self._verify_argon2, stored_hash, secret)
        elif stored_hash.startswith(_BCRYPT_PREFIXES):
            # bcrypt hashes come from the legacy system, which hashed the raw bytes: no normalisation here.
            raw = password.encode("utf-8") if len(password) <= _MAX_RAW_CODE_POINTS else b""
            if raw and len(raw) <= MAX_PASSWORD_BYTES:
                matched = await self._run(_verify_bcrypt, stored_hash, raw[:_BCRYPT_MAX_BYTES])
        if matched is None:
            # Spend the time of a real verification anyway, so the answer's timing says nothing more.
            await self.verify_dummy("")
        return bool(matched)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True unless `stored_hash` is argon2id with exactly the current parameters (bcrypt: always True)."""
        if not stored_hash.startswith(_ARGON2ID_PREFIX):
            return True
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    async def verify_dummy(self, password: str) -> None:
        """Cost of one real verification, for unknown accounts (comparable timing, nothing learned)."""
        secret = self._argon2_secret(password) or b""
        await self._run(self._verify_argon2, self._dummy_hash, secret)

    async def _run(self, work, *args):
        """`work(*args)` in a worker thread, once one of the `max_concurrent` slots is free."""
        async with self._slots:
            return await asyncio.to_thread(work, *args)

    def _argon2_secret(self, password: str) -> bytes | None:
        if len(password) > _MAX_RAW_CODE_POINTS:
            return None
        secret = unicodedata.normalize("NFC", password).encode("utf-8")
        return secret if len(secret) <= MAX_PASSWORD_BYTES else None

    def _verify_argon2(self, stored_hash: str, secret: bytes) -> bool | None:
        try:
            return self._argon2.verify(stored_hash, secret)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError, ValueError):
            return None


def _verify_bcrypt(stored_hash: str, secret: bytes) -> bool | None:
    try:
        return bcrypt.checkpw(secret, stored_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
