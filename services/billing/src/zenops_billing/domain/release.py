"""The release gate: may a work order's deliverable be released, and on what basis.

- CREDIT: the work order's active reservation (or its channel request's) is consumed;
  with none, `amount` credits are reserved and consumed in the same transaction; a
  shortfall fails INSUFFICIENT_CREDITS unless an operator holding billing.override gives
  a reason (the wallet records the shortfall as an ADJUSTMENT).
- POSTPAID: allowed when the invoice holding the work order's line (or its channel
  request's line) is PAID; otherwise INVOICE_UNPAID unless overridden with a reason
  (recorded).
- A work order is authorized at most once: a second call, whatever its key, answers the
  first decision and charges nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from zenops_kit.context import RequestContext
from zenops_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, PermissionDenied, Unauthenticated

CREDITS_CONSUMED = "CREDITS_CONSUMED"
INVOICE_PAID = "INVOICE_PAID"
OVERRIDDEN = "OVERRIDDEN"

DEFAULT_AMOUNT = 1
MAX_AMOUNT = 1_000_000
MAX_REASON = 500
OVERRIDE_CAPABILITY = "billing.override"
WRITE_CAPABILITY = "billing.write"
# Who may ask the gate besides a caller holding billing.write: repogen's service token
# (repogen asks before releasing a deliverable; its service client has no billing.write).
REPOGEN_SERVICE = "service:repogen"
OVERRIDE_EVENT = "RELEASE_OVERRIDE"


def check_caller(ctx: RequestContext) -> None:
    """The caller rule: billing.write, or repogen's service token (aud=service, sub
    "service:repogen"). Portal tokens and everyone else: PERMISSION_DENIED."""
    if not ctx.authenticated:
        raise Unauthenticated("authentication required", reason="UNAUTHENTICATED")
    if WRITE_CAPABILITY in ctx.capabilities or (ctx.is_service and ctx.subject == REPOGEN_SERVICE):
        return
    raise PermissionDenied(
        f"missing capability: {WRITE_CAPABILITY}", reason="MISSING_CAPABILITY", metadata={"missing": WRITE_CAPABILITY}
    )


@dataclass(frozen=True)
class GateRequest:
    work_order_id: str
    account_id: str
    channel_request_id: str
    amount: int
    override_reason: str


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def validate(req: GateRequest) -> GateRequest:
    """Field problems all at once; returns the request with the default amount applied."""
    v: list[FieldViolation] = []
    if not req.work_order_id.strip() or len(req.work_order_id) > 100:
        v.append(FieldViolation("work_order_id", "required, at most 100 characters"))
    if not _is_uuid(req.account_id):
        v.append(FieldViolation("account_id", "must be a billing account id (UUID)"))
    if len(req.channel_request_id) > 100:
        v.append(FieldViolation("channel_request_id", "at most 100 characters"))
    if not 0 <= req.amount <= MAX_AMOUNT:
        v.append(FieldViolation("amount", f"must be between 1 and {MAX_AMOUNT} (0 means {DEFAULT_AMOUNT})"))
    if len(req.override_reason) > MAX_REASON or (req.override_reason and not req.override_reason.strip()):
        v.append(FieldViolation("override_reason", f"at most {MAX_REASON} characters, not blank"))
    if v:
        raise InvalidArgument("invalid release authorization", violations=v)
    return GateRequest(
        req.work_order_id.strip(),
        req.account_id,
        req.channel_request_id.strip(),
        req.amount or DEFAULT_AMOUNT,
        req.override_reason.strip(),
    )


def reservation_refs(req: GateRequest) -> list[tuple[str, str]]:
    """Where the work order's credits may be reserved: its own ref, then its channel request's."""
    refs = [("work_order", req.work_order_id)]
    if req.channel_request_id:
        refs.append(("channel_request", req.channel_request_id))
    return refs


def may_override(req: GateRequest, capabilities: frozenset[str]) -> bool:
    return bool(req.override_reason) and OVERRIDE_CAPABILITY in capabilities


def override_note(req: GateRequest, capabilities: frozenset[str]) -> dict[str, str]:
    """Error metadata explaining why a given override reason did not apply."""
    if req.override_reason and OVERRIDE_CAPABILITY not in capabilities:
        return {"override": f"ignored: the caller lacks {OVERRIDE_CAPABILITY}"}
    return {}


def credit_basis(reservation_override_reason: str) -> str:
    """A reservation made beyond available (by override) makes the release an override."""
    return OVERRIDDEN if reservation_override_reason else CREDITS_CONSUMED


def postpaid_basis(req: GateRequest, capabilities: frozenset[str], *, invoice_paid: bool) -> str:
    if invoice_paid:
        return INVOICE_PAID
    if may_override(req, capabilities):
        return OVERRIDDEN
    raise FailedPrecondition(
        "the work order's invoice is not paid",
        reason="INVOICE_UNPAID",
        metadata={"work_order_id": req.work_order_id, **override_note(req, capabilities)},
    )
