"""Entry points of the billing service: the gRPC server with its relay and consumers, and
the background jobs (refill scheduler, reservation expiry sweep, reconciliation schedule)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from zenops.billing.v1 import invoicing_pb2
from zenops_kit.context import TokenVerifier
from zenops_kit.server import ServiceApp

from .api.servicer import register
from .providers import settlement
from .reactions import subscriptions
from .reconciliation import run as reconciliation
from .reconciliation.owners import close_owners, owners_for
from .settings import BillingSettings
from .subscriptions import scheduler
from .wallet import operations as wallet

log = logging.getLogger("zenops.billing.app")

MIGRATIONS = Path(__file__).parent / "migrations"
INVOICING_SERVICE = invoicing_pb2.DESCRIPTOR.services_by_name["InvoicingService"].full_name
# Every RPC needs a bearer token but health and reflection (the kit's rule) and the payment
# providers' webhooks, whose signature is their authorisation (verified by billing).
PUBLIC_METHODS: set[str] = {f"/{INVOICING_SERVICE}/HandleProviderWebhook"}


async def every(interval: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """`job()` now and then every `interval` seconds until cancelled. A run that fails is
    logged and tried again at the next tick (every job is safe to rerun); a run is bounded
    by asyncio.timeout (not wait_for, which can swallow a cancellation on Python 3.11)."""
    while True:
        try:
            async with asyncio.timeout(max(interval, 60.0) * 10):
                await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background job must outlive a bad run
            log.exception("background job failed", extra={"job": name})
        await asyncio.sleep(interval)


class BillingApp(ServiceApp):
    """ServiceApp plus billing's background jobs, run where the workers run (run_workers)."""

    settings: BillingSettings

    def _start_workers(self) -> None:
        super()._start_workers()
        rt, s = self.runtime, self.settings
        jobs = {
            "refills": (s.refill_interval, lambda: scheduler.run_refills(rt.engine)),
            "reservation-expiry": (s.expiry_sweep_interval, lambda: wallet.expire_due(rt.engine)),
            "reconciliation": (
                s.reconcile_interval,
                lambda: reconciliation.reconcile_all(
                    rt.engine, owners_for(rt), limit=s.reconcile_batch, threshold_seconds=s.reconcile_threshold_seconds
                ),
            ),
            "payment-settlement": (s.payment_sweep_interval, lambda: settlement.sweep(rt.engine)),
        }
        for name, (interval, job) in jobs.items():
            self.supervisor.add(
                f"billing-{name}", lambda interval=interval, job=job, name=name: every(interval, job, name)
            )

    async def stop(self) -> None:
        await super().stop()  # cancels and awaits the jobs first
        if self.runtime is not None:
            await close_owners(self.runtime)


def build_app(settings: BillingSettings, *, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` None: the kit's default (identity's JWKS + revocation events)."""
    return BillingApp(
        settings,
        name="billing",
        register=register,
        public_methods=PUBLIC_METHODS,
        verifier=verifier,
        subscriptions=subscriptions(settings),
    )
