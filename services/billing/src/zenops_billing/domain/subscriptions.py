"""Plans, subscriptions and their refill periods: pure rules, no I/O.

A subscription's periods are anchored on its start: period n starts `n` calendar months
after the anchor, in UTC, on the anchor's day of the month, clamped to the month's last
day (anchor Jan 31 → Feb 28/29 → Mar 31 → Apr 30). Each period start is computed from the
anchor, never from the previous period, so one short month does not drift the rest.

Refills: the refill of period n is due at its start. The scheduler grants every due
period exactly once while the subscription is ACTIVE (missed periods are caught up);
a period that starts while the subscription is PAUSED is never granted: a resume first
grants what was due before the pause (if the scheduler had not yet), then moves on to the
first period starting from the resume.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from zenops_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from zenops_kit.fields import CONTROL_CHARACTERS, has_control_characters

ACTIVE = "ACTIVE"
PAUSED = "PAUSED"
CANCELLED = "CANCELLED"
STATUSES = (ACTIVE, PAUSED, CANCELLED)

MONTHLY = "monthly"
PERIODS = (MONTHLY,)

PLAN_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_NAME = 200
# A refill beyond this per period is a typo, not a plan.
MAX_CREDITS_PER_PERIOD = 10_000_000
MAX_PRICE_PAISE = 10_000_000_000


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    credits_per_period: int
    period: str
    price_paise: int


@dataclass(frozen=True)
class Plan:
    id: str
    tenant_id: str
    code: str
    name: str
    credits_per_period: int
    period: str
    price_paise: int
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    account_id: str
    plan_id: str
    status: str
    anchor_at: datetime
    next_period: int
    next_refill_at: datetime | None
    created_at: datetime
    updated_at: datetime
    paused_at: datetime | None
    cancelled_at: datetime | None


def validate_plan(spec: PlanSpec) -> None:
    """Every field problem at once, each naming its field."""
    v: list[FieldViolation] = []
    if not PLAN_CODE.fullmatch(spec.code):
        v.append(FieldViolation("code", "1-64 characters: letters, digits, '_', '.', '-' (starting alphanumeric)"))
    if not spec.name.strip() or len(spec.name) > MAX_NAME:
        v.append(FieldViolation("name", f"required, at most {MAX_NAME} characters"))
    elif has_control_characters(spec.name):
        v.append(FieldViolation("name", CONTROL_CHARACTERS))
    if not 0 < spec.credits_per_period <= MAX_CREDITS_PER_PERIOD:
        v.append(FieldViolation("credits_per_period", f"must be between 1 and {MAX_CREDITS_PER_PERIOD}"))
    if spec.period not in PERIODS:
        v.append(FieldViolation("period", "must be one of: " + ", ".join(PERIODS)))
    if not 0 <= spec.price_paise <= MAX_PRICE_PAISE:
        v.append(FieldViolation("price_paise", f"must be between 0 and {MAX_PRICE_PAISE} (paise)"))
    if v:
        raise InvalidArgument("invalid plan", violations=v)


# -- period arithmetic -----------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: billing times are UTC-aware")
    return value.astimezone(UTC)


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` plus `months` calendar months (UTC), the day clamped to the month's end."""
    anchor = utc(anchor)
    total = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_start(anchor: datetime, n: int) -> datetime:
    return add_months(anchor, n)


def period_index_at(anchor: datetime, at: datetime) -> int:
    """The index of the period containing `at` (-1 before the anchor)."""
    anchor, at = utc(anchor), utc(at)
    if at < anchor:
        return -1
    n = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    # the month difference can overshoot by one (at is earlier in its month than the anchor)
    while n > 0 and period_start(anchor, n) > at:
        n -= 1
    while period_start(anchor, n + 1) <= at:
        n += 1
    return n


def due_periods(anchor: datetime, next_period: int, until: datetime) -> range:
    """Indices of the periods started by `until` (inclusive) that are not granted yet."""
    return range(next_period, period_index_at(anchor, until) + 1)


def first_period_from(anchor: datetime, at: datetime) -> int:
    """The first period starting at or after `at`."""
    n = period_index_at(anchor, at)
    if n < 0:
        return 0
    return n if period_start(anchor, n) == utc(at) else n + 1


def due_until(status: str, now: datetime, paused_at: datetime | None) -> datetime | None:
    """Refills are owed for periods that started while ACTIVE: up to now, or up to the pause."""
    if status == ACTIVE:
        return now
    if status == PAUSED:
        return paused_at
    return None


def current_period(anchor: datetime, next_period: int) -> tuple[datetime, datetime]:
    """The last granted period (the first one before any grant): (start, end)."""
    n = max(next_period - 1, 0)
    return period_start(anchor, n), period_start(anchor, n + 1)


def refill_ref(subscription_id: str, start: datetime) -> str:
    """The ledger's business ref of one period's refill."""
    return f"subscription:{subscription_id}:{utc(start).strftime('%Y-%m-%dT%H:%M:%SZ')}"


# -- state rules -----------------------------------------------------------------------------

PAUSE, RESUME, CANCEL = "pause", "resume", "cancel"
_TARGET = {PAUSE: PAUSED, RESUME: ACTIVE, CANCEL: CANCELLED}


def transition(status: str, action: str) -> str | None:
    """The new status for `action`, or None when the subscription is already there (a
    repeated request is answered with the subscription as it is). CANCELLED is final."""
    target = _TARGET[action]
    if status == target:
        return None
    if status == CANCELLED:
        raise FailedPrecondition("the subscription is cancelled", reason="SUBSCRIPTION_CANCELLED")
    if action == PAUSE and status != ACTIVE:
        raise FailedPrecondition("only an active subscription can be paused", reason="SUBSCRIPTION_NOT_ACTIVE")
    if action == RESUME and status != PAUSED:
        raise FailedPrecondition("only a paused subscription can be resumed", reason="SUBSCRIPTION_NOT_PAUSED")
    return target
