"""Brute-force defence without lockout.

A hard lock let anyone lock a known account (the first super admin's included) by typing
wrong passwords. Instead:

- **Per account, a progressive delay.** Failed logins are counted per (tenant, email) —
  for unknown emails exactly as for real ones, so the delay says nothing about whether an
  account exists. Past `free_failures`, an attempt is evaluated only once
  `delay(failures)` has passed since the last failure (the answer waits; it is never
  refused for that reason), doubling from `base` up to `maximum`. The real user is always
  let in with the right password, at worst `maximum` seconds late, however many wrong
  passwords others sent. Counts are forgotten `window` after the last failure, and reset
  by a successful login, a password change or an admin's UnlockUser.
- **Per client, a throttle.** One client address (an IPv6 client: its /64) may fail at
  most `max_failures` logins per `window`; beyond that its attempts are refused before
  any password work (RESOURCE_EXHAUSTED with a retry delay) — whatever the account, so
  this answer says nothing about accounts either. Kept in each replica's memory.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Failures:
    count: int
    last_at: datetime | None


NONE = Failures(0, None)


@dataclass(frozen=True)
class AccountDelay:
    free_failures: int
    base: float  # seconds, the first delay
    maximum: float  # seconds, the longest delay
    window: timedelta  # failures older than this (after the last one) are forgotten

    def current(self, failures: Failures, now: datetime) -> Failures:
        if failures.last_at is None or failures.last_at <= now - self.window:
            return NONE
        return failures

    def delay(self, count: int) -> float:
        """Seconds an attempt waits after the last of `count` failures."""
        if count < self.free_failures:
            return 0.0
        return min(self.base * 2 ** (count - self.free_failures), self.maximum)

    def delayed_until(self, failures: Failures, now: datetime) -> datetime | None:
        """No attempt is evaluated before this (None: at once)."""
        failures = self.current(failures, now)
        seconds = self.delay(failures.count)
        if not seconds or failures.last_at is None:
            return None
        until = failures.last_at + timedelta(seconds=seconds)
        return until if until > now else None

    def wait(self, failures: Failures, now: datetime) -> float:
        """Seconds to wait before evaluating an attempt now (at most `maximum`)."""
        until = self.delayed_until(failures, now)
        return 0.0 if until is None else min((until - now).total_seconds(), self.maximum)


class ClientThrottle:
    """At most `max_failures` failed logins per `window` seconds per client address."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def key(address: str | None) -> str | None:
        """The throttled unit: an IPv4 address, an IPv6 /64 (one subscriber's allocation);
        None when the address is unknown (a direct internal gRPC caller)."""
        if not address:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def retry_after(self, address: str | None) -> float | None:
        """Seconds until this client may try again; None: it may now."""
        times = self._failures.get(self.key(address) or "")
        if times is None or len(times) < self.max_failures:
            return None
        remaining = times[0] + self.window - self.clock()
        return remaining if remaining > 0 else None

    def failed(self, address: str | None) -> bool:
        """Count a failure; True when it used up the client's allowance."""
        key = self.key(address)
        if key is None:
            return False
        times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
        times.append(self.clock())
        self._failures[key] = times  # most recent last
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return len(times) == self.max_failures and times[-1] - times[0] <= self.window
