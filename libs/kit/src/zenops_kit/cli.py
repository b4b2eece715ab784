"""`python -m zenops_<svc> serve|migrate [--revision R]|downgrade --revision R` for every service."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from .logging import setup_logging
from .migrations import downgrade, upgrade
from .server import ServiceApp
from .settings import ServiceSettings


def service_main(
    name: str,
    settings_factory: Callable[[], ServiceSettings],
    app_factory: Callable[[ServiceSettings], ServiceApp],
    migrations_dir: Path,
    argv: list[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"zenops_{name}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the gRPC server, relay and consumers until SIGTERM")
    up = sub.add_parser("migrate", help="apply the schema migrations of this service's database")
    up.add_argument("--revision", default="head")
    down = sub.add_parser("downgrade", help="revert migrations (local use; production is forward-only)")
    down.add_argument("--revision", required=True)
    args = parser.parse_args(argv)

    settings = settings_factory()
    setup_logging(name, settings.log_level)
    url = settings.database_url.get_secret_value()
    if args.command == "serve":
        app_factory(settings).main()
    elif args.command == "migrate":
        upgrade(migrations_dir, url, args.revision)
        logging.getLogger("zenops.migrate").info("migrated", extra={"service": name, "revision": args.revision})
    else:
        if settings.is_production:
            parser.error("downgrade is refused in production (migrations are forward-only)")
        downgrade(migrations_dir, url, args.revision)
