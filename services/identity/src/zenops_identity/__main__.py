"""python -m zenops_identity serve | migrate | downgrade --revision R"""

from zenops_kit.cli import service_main

from .app import MIGRATIONS, build_app
from .settings import IdentitySettings


def main() -> None:
    service_main("identity", IdentitySettings, build_app, MIGRATIONS)


if __name__ == "__main__":
    main()
