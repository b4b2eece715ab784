"""python -m zenops_repogen serve | migrate | downgrade --revision R"""

from zenops_kit.cli import service_main

from .app import MIGRATIONS, build_app
from .settings import RepogenSettings


def main() -> None:
    service_main("repogen", RepogenSettings, build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
