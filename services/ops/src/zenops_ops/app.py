"""Entry points of the ops service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.context import TokenVerifier
from zenops_kit.server import ServiceApp

from .api.servicer import register
from .settings import OpsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# Every RPC needs a bearer token; only health and reflection are public (the kit's rule).
PUBLIC_METHODS: set[str] = set()


def build_app(settings: OpsSettings, *, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` None: the kit's default (identity's JWKS + revocation events)."""
    return ServiceApp(settings, name="ops", register=register, public_methods=PUBLIC_METHODS, verifier=verifier)
