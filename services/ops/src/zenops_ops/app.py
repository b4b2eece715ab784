"""Entry points of the ops service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.context import TokenVerifier
from zenops_kit.server import ServiceApp
from zenops_kit.storage import close_storage

from .api.servicer import register
from .billing_accounts import close_billing_accounts
from .outbox import PRODUCER
from .reactions import subscriptions
from .settings import OpsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# Every RPC needs a bearer token but the local storage driver's two: their signed token is
# the authorisation (as an S3 presigned URL's signature is).
PUBLIC_METHODS: set[str] = {"/zenops.ops.v1.OpsService/PutLocalObject", "/zenops.ops.v1.OpsService/GetLocalObject"}


class OpsApp(ServiceApp):
    """ServiceApp plus the clients ops opens on first use (billing, the storage driver),
    closed after the server and the workers have stopped."""

    async def stop(self) -> None:
        await super().stop()
        if self.runtime is not None:
            await close_billing_accounts(self.runtime)
            await close_storage(self.runtime)


def build_app(settings: OpsSettings, *, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` None: the kit's default (identity's JWKS + revocation events)."""
    PRODUCER.version = settings.version
    return OpsApp(
        settings,
        name="ops",
        register=register,
        public_methods=PUBLIC_METHODS,
        verifier=verifier,
        subscriptions=subscriptions(settings),
    )
