"""`python -m zenops_gateway serve`: uvicorn (uvloop + httptools) serving `create_app()`."""

from __future__ import annotations

import argparse
import logging
import time
from types import FrameType

import uvicorn

from zenops_kit.heap import settle_heap
from zenops_kit.logging import setup_logging

from .app import SERVICE_NAME, create_app
from .protocol import CoalescingHttpToolsProtocol
from .runtime import Runtime
from .settings import GatewaySettings

log = logging.getLogger("zenops.gateway")


class GatewayServer(uvicorn.Server):
    """uvicorn, plus a drain period: on the first SIGTERM/SIGINT readiness turns 503 at
    once while the listener keeps serving for `shutdown_drain_seconds` (so Envoy and the
    Kubernetes endpoints stop sending traffic here), then uvicorn's graceful shutdown runs
    (in-flight requests get `shutdown_grace` seconds, then the lifespan closes the clients).
    A second signal skips the rest of the drain; a third SIGINT forces exit."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime, drain_seconds: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_seconds = drain_seconds
        self._drain_until: float | None = None

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        settle_heap()  # the app and its lifespan are up: what they built is frozen (zenops_kit.heap)

    def begin_drain(self) -> None:
        self.runtime.ready = False
        if self._drain_until is None:
            log.info("shutdown requested; draining", extra={"seconds": self.drain_seconds})
            self._drain_until = time.monotonic() + self.drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_until is None and self.drain_seconds > 0 and not self.should_exit:
            self.begin_drain()
            return
        self.runtime.ready = False
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def build_server(settings: GatewaySettings) -> GatewayServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # httptools, one write per response (protocol.py)
        lifespan="on",
        access_log=False,  # Envoy writes the access log
        log_config=None,  # keep kit's JSON logging on the root logger
        server_header=False,
        proxy_headers=False,  # X-Forwarded-For is the app's to judge (edge.py): it needs the real peer
        timeout_graceful_shutdown=settings.shutdown_grace,  # type: ignore[arg-type]
    )
    return GatewayServer(config, app.state.runtime, settings.shutdown_drain_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zenops_gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the HTTP API until SIGTERM")
    parser.parse_args(argv)
    settings = GatewaySettings()
    setup_logging(SERVICE_NAME, settings.log_level)
    build_server(settings).run()


if __name__ == "__main__":
    main()
