"""RecordUsage: usage events from external systems and from domain events, recorded once
per event id (a repeat changes nothing and answers the event recorded first)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from zenops_kit.errors import FieldViolation, InvalidArgument

from .domain.wallet import REF_ID, account_not_found, is_uuid
from .store import usage as store
from .store.usage import UsageEvent
from .wallet import operations as wallet

KIND = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
REF_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_EVENT_ID = 200
MAX_QUANTITY = 1_000_000_000_000

REPORT_PLANNED = "report_planned"
REPORT_RELEASED = "report_released"


@dataclass(frozen=True)
class UsageInput:
    event_id: str
    account_id: str
    kind: str
    quantity: int
    ref_type: str = ""
    ref_id: str = ""
    occurred_at: datetime | None = None


def validate(u: UsageInput) -> None:
    v: list[FieldViolation] = []
    if not u.event_id.strip() or len(u.event_id) > MAX_EVENT_ID:
        v.append(FieldViolation("usage.event_id", f"required, at most {MAX_EVENT_ID} characters"))
    if not is_uuid(u.account_id):
        v.append(FieldViolation("usage.account_id", "must be a billing account id (UUID)"))
    if not KIND.fullmatch(u.kind):
        v.append(FieldViolation("usage.kind", "1-64 characters: lowercase letters, digits, '_' and '.'"))
    if not 0 < u.quantity <= MAX_QUANTITY:
        v.append(FieldViolation("usage.quantity", f"must be between 1 and {MAX_QUANTITY}"))
    if u.ref_type and not REF_TYPE.fullmatch(u.ref_type):
        v.append(FieldViolation("usage.ref_type", "1-64 characters: lowercase letters, digits and '_'"))
    if u.ref_id and not REF_ID.fullmatch(u.ref_id):
        v.append(FieldViolation("usage.ref_id", "1-200 characters of letters, digits and _.:/-"))
    if bool(u.ref_type) != bool(u.ref_id):
        v.append(FieldViolation("usage.ref_id" if u.ref_type else "usage.ref_type", "ref_type and ref_id go together"))
    if v:
        raise InvalidArgument("invalid usage event", violations=v)


async def record(conn: AsyncConnection, *, tenant_id: str, usage: UsageInput, source: str) -> tuple[UsageEvent, bool]:
    """(the event, created). In the caller's tenant transaction; the account must exist."""
    validate(usage)
    if await wallet.get_account(conn, usage.account_id) is None:
        raise account_not_found(usage.account_id)
    return await store.insert(
        conn,
        tenant_id=tenant_id,
        event_id=usage.event_id.strip(),
        account_id=usage.account_id,
        kind=usage.kind,
        quantity=usage.quantity,
        ref_type=usage.ref_type,
        ref_id=usage.ref_id,
        occurred_at=usage.occurred_at or datetime.now(UTC),
        source=source,
    )
