"""Brute-force lockout: N consecutive failures lock the account for a while.

While locked, attempts fail without counting (a lock is never extended by the attacker
who caused it); once it has expired, the count starts again from zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockState:
    failed_count: int
    locked_until: datetime | None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


@dataclass(frozen=True)
class Lockout:
    threshold: int
    duration: timedelta

    def after_failure(self, state: LockState, now: datetime) -> tuple[LockState, bool]:
        """The state after a failed attempt, and whether this attempt locked the account."""
        if state.is_locked(now):
            return state, False
        count = 0 if state.locked_until is not None else state.failed_count  # a served lock resets
        count += 1
        if count >= self.threshold:
            return LockState(count, now + self.duration), True
        return LockState(count, None), False

    @staticmethod
    def after_success() -> LockState:
        return LockState(0, None)
