"""A service built on the kit whose one RPC holds a database connection for a while:
the subject of the graceful-shutdown test (run as its own process, stopped by SIGTERM)."""

import grpc
from sqlalchemy import text

from zenops_kit.server import ServiceApp
from zenops_kit.settings import ServiceSettings

METHOD = "/zenops.test.v1.Slow/Work"


def register(server, runtime) -> list[str]:
    async def work(request: bytes, context) -> bytes:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.4)"))
        return b"done"

    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "zenops.test.v1.Slow", {"Work": grpc.unary_unary_rpc_method_handler(work)}
            )
        ]
    )
    return ["zenops.test.v1.Slow"]


if __name__ == "__main__":
    ServiceApp(ServiceSettings(), name="slow", register=register, public_methods={METHOD}, produces_events=False).main()
