"""ReleaseDeliverable: proto ↔ the use case (release.py). Capability repogen.release (and
billing.override with an override reason); idempotent by the request's `idempotency_key`,
else metadata `idempotency-key`."""

from __future__ import annotations

from .. import release
from ..billing_client import billing_client_for
from ..domain import factory as domain
from .caller import caller, idempotency_key, metadata


def _bearer(context) -> str | None:
    """The caller's own token (sent to billing only for an override)."""
    scheme, _, token = metadata(context).get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ReleaseRpcs:
    """Mixed into RepogenServicer (self.engine, self.runtime, self.settings)."""

    async def ReleaseDeliverable(self, request, context):
        c = await caller(self.engine, context, "repogen.release")
        work_order_id = domain.work_order_id(request.work_order_id)
        override = domain.override_reason(request.override_reason)
        key = idempotency_key(request.idempotency_key, context)
        return await release.release_deliverable(
            self.engine,
            billing_client_for(self.runtime),
            c,
            work_order_id=work_order_id,
            override_reason=override,
            key=key,
            request=request,
            user_token=_bearer(context),
        )
