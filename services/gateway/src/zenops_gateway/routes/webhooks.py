"""Payment-provider webhooks: `POST /v1/webhooks/razorpay` and `POST /v1/webhooks/stripe`.

NO bearer token: the provider's signature is the authorisation, and billing (which owns the
secrets) checks it. The gateway forwards what it received untouched — the raw body bytes (a
signature is over the exact bytes: never parsed, re-encoded or normalised here) and the
request's headers, names lower-cased (repeated headers joined with ", ", RFC 9110 §5.3) — to
billing's HandleProviderWebhook, and answers billing's verdict:

- 200 `{event_id, outcome}` (`applied`, `duplicate` for a replay, `ignored` for an event
  type billing stores but does not act on): the provider stops retrying;
- 400 (INVALID_ARGUMENT: bad or missing signature, stale or future timestamp, malformed
  event) — nothing changed, billing audits it;
- 409 (ALREADY_EXISTS: the same event id with a different body);
- 503 when billing (or the provider's configuration) is unavailable: the provider retries.

Bodies are bounded at 256 KiB (providers' events are a few KiB; Envoy's webhook route has
the same limit); over it is 413.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import Headers

from zenops.billing.v1 import invoicing_pb2 as pb

from ..deps import InvoicingDep
from ..errors import ProblemHTTPException
from ..errors import problem_responses as problems
from ..handler import LeanRoute
from ..models.invoicing import Provider, WebhookResult

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=LeanRoute)

MAX_WEBHOOK_BYTES = 256 * 1024

RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "The provider's event, byte for byte as it signed it.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def forwarded_headers(headers: Headers) -> dict[str, str]:
    """The request's headers, names lower-cased; a repeated header's values joined by ", "."""
    out: dict[str, str] = {}
    for name, value in headers.items():  # Starlette: every occurrence, names already lower-case
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


async def raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise ProblemHTTPException(
            413, "PAYLOAD_TOO_LARGE", f"The request body exceeds the limit of {MAX_WEBHOOK_BYTES} bytes."
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise ProblemHTTPException(
                413, "PAYLOAD_TOO_LARGE", f"The request body exceeds the limit of {MAX_WEBHOOK_BYTES} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def forward(provider: Provider, request: Request, invoicing: InvoicingDep) -> WebhookResult:
    body = await raw_body(request)
    resp = await invoicing.handle_provider_webhook(
        pb.HandleProviderWebhookRequest(provider=provider, body=body, headers=forwarded_headers(request.headers))
    )
    return WebhookResult.from_proto(resp)


DOC = (
    "No bearer token: billing verifies the provider's signature over the raw body. 200 `{event_id, outcome}` "
    "(`applied`, `duplicate`, `ignored`); 400 for a bad signature or timestamp (nothing changes; audited); 409 "
    "for an event id seen with a different body; 413 over 256 KiB; 503 when billing cannot take it (the "
    "provider retries)."
)


@router.post(
    "/razorpay",
    response_model=WebhookResult,
    summary="Razorpay webhook (X-Razorpay-Signature over the raw body)",
    description=DOC,
    responses=problems(400, 409, 413, 503),
    openapi_extra=RAW_BODY,
)
async def razorpay_webhook(request: Request, invoicing: InvoicingDep) -> WebhookResult:
    return await forward("razorpay", request, invoicing)


@router.post(
    "/stripe",
    response_model=WebhookResult,
    summary="Stripe webhook (Stripe-Signature: t=…,v1=… over the raw body)",
    description=DOC,
    responses=problems(400, 409, 413, 503),
    openapi_extra=RAW_BODY,
)
async def stripe_webhook(request: Request, invoicing: InvoicingDep) -> WebhookResult:
    return await forward("stripe", request, invoicing)
