"""Entry points of the identity service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.server import ServiceApp

from .api.servicer import SERVICE_NAME, register
from .settings import IdentitySettings

MIGRATIONS = Path(__file__).parent / "migrations"
PUBLIC_METHODS = {f"/{SERVICE_NAME}/GetServiceInfo"}


def build_app(settings: IdentitySettings) -> ServiceApp:
    return ServiceApp(settings, name="identity", register=register, public_methods=PUBLIC_METHODS)
