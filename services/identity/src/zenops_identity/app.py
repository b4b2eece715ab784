"""Entry points of the identity service: the gRPC server with its relay, bootstrap and
signing-key maintenance."""

from __future__ import annotations

from pathlib import Path

from zenops_kit.context import TokenVerifier
from zenops_kit.db import create_engine
from zenops_kit.server import Runtime, ServiceApp

from .api.servicer import SERVICE_NAME, register
from .auth import signing
from .bootstrap import bootstrap
from .core import Identity
from .settings import IdentitySettings
from .tokens.verifier import DeferredVerifier

MIGRATIONS = Path(__file__).parent / "migrations"
# Callable without a token: how one gets a token in the first place, and the keys to check it.
PUBLIC_METHODS = {f"/{SERVICE_NAME}/{m}" for m in ("Login", "Refresh", "GetJwks", "IssueServiceToken")}


class IdentityApp(ServiceApp):
    """ServiceApp plus: bootstrap before serving, identity's own verifier (its key store and
    session table, no gRPC to itself), and the signing-key rotation check."""

    def __init__(self, settings: IdentitySettings, verifier: TokenVerifier | None = None) -> None:
        self.identity: Identity | None = None
        self._deferred = DeferredVerifier() if verifier is None else None
        super().__init__(
            settings,
            name="identity",
            register=self._register,
            public_methods=PUBLIC_METHODS,
            verifier=verifier or self._deferred,
        )

    def _register(self, server, runtime: Runtime) -> list[str]:
        self.identity = Identity.create(self.settings, runtime.engine)
        if self._deferred is not None:
            self._deferred.target = self.identity.verifier
        return register(server, runtime, self.identity)

    async def start(self) -> int:
        # Before the server exists: tenants, first admin, first key (refuses to start on bad config).
        engine = create_engine(
            self.settings.database_url.get_secret_value(), pool_size=1, application_name="identity-bootstrap"
        )
        try:
            await bootstrap(Identity.create(self.settings, engine))
        finally:
            await engine.dispose()
        port = await super().start()
        self.supervisor.add(
            "signing-keys", lambda: signing.maintain(self.identity, self.settings.signing_key_check_interval)
        )
        return port


def build_app(settings: IdentitySettings, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` replaces identity's own (tests that sign their own tokens); None: identity's."""
    return IdentityApp(settings, verifier)
