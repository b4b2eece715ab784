"""python -m zenops_billing serve | migrate | downgrade --revision R"""

from zenops_kit.cli import service_main

from .app import MIGRATIONS, build_app
from .settings import BillingSettings


def main() -> None:
    service_main("billing", BillingSettings, build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
