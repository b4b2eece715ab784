"""Entry points of the ops service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.context import TokenVerifier
from zenops_kit.server import ServiceApp

from .api.servicer import register
from .outbox import set_producer_version
from .settings import OpsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
# Every RPC needs a bearer token but the local storage driver's two: their signed token is
# the authorisation (as an S3 presigned URL's signature is).
PUBLIC_METHODS: set[str] = {"/zenops.ops.v1.OpsService/PutLocalObject", "/zenops.ops.v1.OpsService/GetLocalObject"}


def build_app(settings: OpsSettings, *, verifier: TokenVerifier | None = None) -> ServiceApp:
    """`verifier` None: the kit's default (identity's JWKS + revocation events)."""
    set_producer_version(settings.version)
    return ServiceApp(settings, name="ops", register=register, public_methods=PUBLIC_METHODS, verifier=verifier)
