"""Entry points of the billing service: the gRPC server with its relay and consumers."""

from pathlib import Path

from zenops_kit.server import ServiceApp

from .api.servicer import SERVICE_NAME, register
from .settings import BillingSettings

MIGRATIONS = Path(__file__).parent / "migrations"
PUBLIC_METHODS = {f"/{SERVICE_NAME}/GetServiceInfo"}


def build_app(settings: BillingSettings) -> ServiceApp:
    return ServiceApp(settings, name="billing", register=register, public_methods=PUBLIC_METHODS)
