"""ServiceTokenProvider: cached, renewed at 80% of the lifetime, one fetch for many callers."""

import asyncio
import time

import grpc
import pytest

from zenops_devstack.process import free_port
from zenops_devstack.testing import poll
from zenops_kit.auth import ServiceTokenProvider
from zenops_kit.errors import Unauthenticated, Unavailable


class Issuer:
    """IssueServiceToken as a counting fetch: token-1, token-2, ... valid `lifetime` seconds."""

    def __init__(self, lifetime: int = 600) -> None:
        self.lifetime = lifetime
        self.calls = 0
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> tuple[str, int]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return f"token-{self.calls}", self.lifetime


async def test_token_is_cached_while_fresh():
    issuer = Issuer()
    provider = ServiceTokenProvider(issuer.fetch)
    assert [await provider.token() for _ in range(5)] == ["token-1"] * 5
    assert issuer.calls == 1


async def test_concurrent_callers_share_one_fetch():
    issuer = Issuer()
    issuer.gate = asyncio.Event()
    provider = ServiceTokenProvider(issuer.fetch)
    pending = [asyncio.create_task(provider.token()) for _ in range(50)]
    await poll(lambda: issuer.calls == 1, what="the fetch")
    issuer.gate.set()
    assert set(await asyncio.gather(*pending)) == {"token-1"}
    assert issuer.calls == 1


async def test_renews_after_80_percent_of_the_lifetime():
    issuer = Issuer(lifetime=2)  # renewal due after 1.6 s
    provider = ServiceTokenProvider(issuer.fetch)
    started = time.monotonic()
    assert await provider.token() == "token-1"

    async def renewed_token():
        return (await provider.token()) == "token-2"

    await poll(renewed_token, timeout=5, interval=0.05, what="the renewed token")
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 2.0, elapsed  # renewed before it expired, not much earlier than 80%
    assert issuer.calls == 2


async def test_failed_renewal_keeps_the_still_valid_token():
    issuer = Issuer(lifetime=60)
    provider = ServiceTokenProvider(issuer.fetch)
    assert await provider.token() == "token-1"
    provider._renew_at = 0  # as if 80% of the lifetime had passed
    issuer.fail = Unavailable("identity is down")
    assert await provider.token() == "token-1"
    assert issuer.calls == 2
    assert await provider.token() == "token-1"
    assert issuer.calls == 2  # no fetch storm while identity is down
    issuer.fail = None
    provider._retry_at = 0
    assert await provider.token() == "token-3"


async def test_errors_without_a_token_propagate_as_kit_errors():
    issuer = Issuer()
    provider = ServiceTokenProvider(issuer.fetch)
    issuer.fail = Unauthenticated("bad secret", reason="SERVICE_CREDENTIALS_REJECTED")
    with pytest.raises(Unauthenticated):
        await provider.token()
    issuer.fail = ConnectionError("refused")
    with pytest.raises(Unavailable):
        await provider.token()
    issuer.fail = None
    assert await provider.token() == "token-3"


async def test_from_identity_unreachable_is_unavailable():
    provider = ServiceTokenProvider.from_identity(f"127.0.0.1:{free_port()}", "ops", "secret", timeout=1)
    try:
        with pytest.raises(Unavailable) as info:
            await provider.token()
        assert "secret" not in info.value.message
    finally:
        await provider.close()


async def test_from_identity_maps_a_refusal_to_unauthenticated():
    """A real gRPC server standing where identity would, refusing the credentials."""
    from zenops.identity.v1 import identity_pb2, identity_pb2_grpc

    seen = []

    class Refusing(identity_pb2_grpc.IdentityServiceServicer):
        async def IssueServiceToken(self, request, context):
            seen.append((request.client_id, request.client_secret))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid client credentials")

    class Issuing(identity_pb2_grpc.IdentityServiceServicer):
        async def IssueServiceToken(self, request, context):
            return identity_pb2.IssueServiceTokenResponse(access_token="svc-token", expires_in=600)

    for servicer, expected in ((Refusing(), Unauthenticated), (Issuing(), "svc-token")):
        server = grpc.aio.server()
        identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        provider = ServiceTokenProvider.from_identity(f"127.0.0.1:{port}", "ops", "s3cret")
        try:
            if expected is Unauthenticated:
                with pytest.raises(Unauthenticated) as info:
                    await provider.token()
                assert info.value.reason == "SERVICE_CREDENTIALS_REJECTED"
                assert "s3cret" not in info.value.message
                assert seen == [("ops", "s3cret")]
            else:
                assert await provider.token() == expected
        finally:
            await provider.close()
            await server.stop(None)
