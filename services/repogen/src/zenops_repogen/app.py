"""Entry points of the repogen service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.server import ServiceApp

from .api.servicer import SERVICE_NAME, register
from .settings import RepogenSettings

MIGRATIONS = Path(__file__).parent / "migrations"
PUBLIC_METHODS = {f"/{SERVICE_NAME}/GetServiceInfo"}


def build_app(settings: RepogenSettings) -> ServiceApp:
    return ServiceApp(settings, name="repogen", register=register, public_methods=PUBLIC_METHODS)
