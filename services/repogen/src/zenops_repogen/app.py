"""Entry points of the repogen service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.context import TokenVerifier
from zenops_kit.server import ServiceApp, Subscription

from .api.servicer import register
from .billing_client import close_billing_client
from .factory import close_factory
from .factory import subscriptions as factory_subscriptions
from .ops_client import OpsClient, close_ops_client, ops_client_for
from .outbox import PRODUCER
from .reactions import subscriptions as reaction_subscriptions
from .service_tokens import close_service_tokens
from .settings import RepogenSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# Every RPC needs a bearer token but the local storage driver's download: its signed token is
# the authorisation (as an S3 presigned URL's signature is).
PUBLIC_METHODS: set[str] = {"/zenops.repogen.v1.RepogenService/GetLocalObject"}


class RepogenApp(ServiceApp):
    """ServiceApp plus repogen's consumers and the clients it opens on first use (ops, its
    service token), closed after the server and the workers have stopped."""

    def __init__(self, settings: RepogenSettings, *, verifier: TokenVerifier | None = None) -> None:
        super().__init__(settings, name="repogen", register=register, public_methods=PUBLIC_METHODS, verifier=verifier)
        self.subscriptions = self._subscriptions(settings)

    def ops_client(self) -> OpsClient:
        return ops_client_for(self.runtime)

    def _subscriptions(self, settings: RepogenSettings) -> list[Subscription]:
        subs = list(reaction_subscriptions(settings, ops=self.ops_client))
        # -- the factory's consumers (ready_for_render → pack and job; the render work queue) --
        subs += factory_subscriptions(settings, runtime=lambda: self.runtime)
        return subs

    async def stop(self) -> None:
        await super().stop()
        if self.runtime is not None:
            await close_ops_client(self.runtime)
            # -- the factory's clients: billing (the release gate) and the artifact storage --
            await close_billing_client(self.runtime)
            await close_factory(self.runtime)
            await close_service_tokens(self.runtime)  # last: the clients above share it


def build_app(settings: RepogenSettings, *, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` None: the kit's default (identity's JWKS + revocation events)."""
    PRODUCER.version = settings.version
    return RepogenApp(settings, verifier=verifier)
