"""python -m zenops_ops serve | migrate | downgrade --revision R"""

from zenops_kit.cli import service_main

from .app import MIGRATIONS, build_app
from .settings import OpsSettings


def main() -> None:
    service_main("ops", OpsSettings, build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
