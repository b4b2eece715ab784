"""Session lifetime and the refresh-token rotation decision.

A session has an absolute deadline (login + absolute TTL) and an idle deadline that each
refresh slides forward, never beyond the absolute one. A refresh token is spent once;
presenting a spent token again is either a concurrent refresh (within the grace period:
answer with the same successor) or a replay (reuse: revoke the whole session).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

# Session revocation reasons (SessionsRevoked.reason).
LOGOUT, REVOKED, REUSE_DETECTED, PASSWORD_CHANGED, USER_DISABLED = (
    "logout",
    "revoked",
    "reuse_detected",
    "password_changed",
    "user_disabled",
)


@dataclass(frozen=True)
class SessionPolicy:
    absolute_ttl: timedelta
    idle_ttl: timedelta
    grace: timedelta

    def new_deadlines(self, now: datetime) -> tuple[datetime, datetime]:
        """(expires_at, idle_expires_at) of a session created now."""
        expires = now + self.absolute_ttl
        return expires, min(now + self.idle_ttl, expires)

    def slide(self, expires_at: datetime, now: datetime) -> datetime:
        """The idle deadline after a refresh at `now`."""
        return min(now + self.idle_ttl, expires_at)


def session_active(revoked_at: datetime | None, expires_at: datetime, idle_expires_at: datetime, now: datetime) -> bool:
    return revoked_at is None and expires_at > now and idle_expires_at > now


class RefreshDecision(enum.Enum):
    ROTATE = "rotate"  # first use: spend it, issue the successor
    REPLAY_IN_GRACE = "replay_in_grace"  # spent moments ago: the same successor again
    REUSE = "reuse"  # spent earlier: a stolen copy is being replayed → revoke the session
    INACTIVE = "inactive"  # session revoked or expired: nothing to do but refuse


def decide_refresh(
    policy: SessionPolicy,
    *,
    used_at: datetime | None,
    revoked_at: datetime | None,
    expires_at: datetime,
    idle_expires_at: datetime,
    now: datetime,
) -> RefreshDecision:
    if not session_active(revoked_at, expires_at, idle_expires_at, now):
        return RefreshDecision.INACTIVE
    if used_at is None:
        return RefreshDecision.ROTATE
    if now - used_at <= policy.grace:
        return RefreshDecision.REPLAY_IN_GRACE
    return RefreshDecision.REUSE
