"""ServiceApp's default verifier: identity's JWKS over gRPC, identity's revocation events.

A real gRPC server stands where identity would and answers GetJwks with a test key (the
kit cannot start identity; identity's tests cover its real endpoint). Everything else is
the real service: the ops app, its interceptor, NATS.
"""

from datetime import UTC, datetime, timedelta

import grpc
import nats
import pytest

from zenops.common.v1 import common_pb2
from zenops.events.v1 import identity_pb2 as events_pb2
from zenops.identity.v1 import identity_pb2, identity_pb2_grpc
from zenops.ops.v1 import ops_pb2, ops_pb2_grpc
from zenops_devstack.process import free_port
from zenops_devstack.testing import TokenSigner, check_serving, poll
from zenops_kit.auth import JwtVerifier
from zenops_kit.errors import parse_rpc_error
from zenops_kit.events import ensure_stream, new_event, subject_for


class Jwks(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, *signers: TokenSigner) -> None:
        self.signers = list(signers)
        self.calls = 0

    async def GetJwks(self, request, context):
        self.calls += 1
        return identity_pb2.GetJwksResponse(keys=[identity_pb2.Jwk(**s.jwk) for s in self.signers])


@pytest.fixture
async def identity():
    jwks = Jwks(TokenSigner("EdDSA"))
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(jwks, server)
    jwks.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield jwks
    await server.stop(None)


async def service_info(port: int, token: str):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = ops_pb2_grpc.OpsServiceStub(ch)
        try:
            resp = await stub.GetServiceInfo(
                ops_pb2.GetServiceInfoRequest(), timeout=10, metadata=(("authorization", f"Bearer {token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            return parse_rpc_error(exc)
        return resp.info


async def test_default_verifier_reads_identitys_jwks_and_follows_revocations(start_service, identity, nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "identity")
    signer = identity.signers[0]
    try:
        async with start_service("ops", identity_addr=f"127.0.0.1:{identity.port}") as app:
            assert isinstance(app.verifier, JwtVerifier)
            assert await check_serving("ops", app.port) is None  # no token: UNAUTHENTICATED
            await poll(lambda: app.revocations.following, what="the service to follow revocations")

            claims = signer.claims(aud="web", caps=["orders.read"])
            token = signer.sign(claims)
            info = await service_info(app.port, token)
            assert info.name == "ops"
            assert identity.calls == 1

            # identity revokes the session: the service rejects the token from then on
            msg = events_pb2.SessionsRevoked(session_ids=[claims["sid"]], user_id=claims["sub"], reason="logout")
            msg.access_valid_until.FromDatetime(datetime.now(UTC) + timedelta(minutes=15))
            env = new_event(
                event_type="identity.session.revoked",
                payload=msg,
                producer="identity",
                producer_version="test",
                aggregate_type="session",
                aggregate_id=claims["sid"],
                aggregate_version=1,
                tenant_id=claims["tid"],
            )
            await js.publish(subject_for(env.event_type), env.SerializeToString())

            async def revoked() -> bool:
                answer = await service_info(app.port, token)
                return getattr(answer, "reason", None) == "TOKEN_REVOKED"

            await poll(revoked, what="the revoked token to be rejected")
            detail = await service_info(app.port, token)
            assert detail.code == grpc.StatusCode.UNAUTHENTICATED

            # a key rotated in at identity is fetched on first sight (at most once a second)
            rotated = TokenSigner("ES256")
            identity.signers.append(rotated)
            token = rotated.token()
            await poll(lambda: _answers(app.port, token), what="the rotated key to be fetched")
            assert identity.calls == 2
        assert app.key_source._inflight is None
    finally:
        await nc.close()


async def _answers(port: int, token: str) -> bool:
    answer = await service_info(port, token)
    if isinstance(answer, common_pb2.ServiceInfo):
        return True
    assert answer.reason == "TOKEN_KEY_UNKNOWN", answer
    return False


async def test_default_verifier_without_identity_is_unavailable(start_service):
    """No keys, no verdict: UNAVAILABLE (retry later), never UNAUTHENTICATED."""
    async with start_service("ops", identity_addr=f"127.0.0.1:{free_port()}") as app:
        detail = await service_info(app.port, TokenSigner().token())
        assert detail.code == grpc.StatusCode.UNAVAILABLE
        # and health is not affected: the service itself is fine
        await check_serving("ops", app.port)


async def test_an_app_can_bring_its_own_verifier(start_service):
    signer = TokenSigner("ES256")
    async with start_service("ops", verifier=signer.verifier()) as app:
        assert app.revocations is None and app.key_source is None
        info = await check_serving("ops", app.port, token=signer.token(aud="studio"))
        assert info["name"] == "ops"
