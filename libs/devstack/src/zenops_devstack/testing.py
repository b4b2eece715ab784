"""Checks every service's own test-suite runs against its real database and server."""

from __future__ import annotations

import asyncio
import importlib
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from .postgres import PostgresServer


def tables(pg: PostgresServer, database: str) -> set[str]:
    out = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database)
    return set(out.split()) if out else set()


def check_migrations_round_trip(service: str, pg: PostgresServer, url: str) -> None:
    """head → base → head: every migration applies and reverts cleanly."""
    from zenops_kit.migrations import downgrade, upgrade

    migrations = importlib.import_module(f"zenops_{service}.app").MIGRATIONS
    database = url.rsplit("/", 1)[1]
    upgrade(migrations, url)
    at_head = tables(pg, database)
    assert {"outbox", "inbox", "dead_letters"} <= at_head
    downgrade(migrations, url, "base")
    assert tables(pg, database) <= {"alembic_version"}
    upgrade(migrations, url)
    assert tables(pg, database) == at_head


async def check_serving(service: str, port: int, token: str | None = None) -> dict | None:
    """Health SERVING for the server and the service; reflection lists the service (both
    public); GetServiceInfo without a token fails UNAUTHENTICATED/TOKEN_MISSING. With
    `token`, GetServiceInfo answers: returns the ServiceInfo as a dict (None without)."""
    from google.protobuf.json_format import MessageToDict

    from zenops_kit.errors import parse_rpc_error

    pb2 = importlib.import_module(f"zenops.{service}.v1.{service}_pb2")
    pb2_grpc = importlib.import_module(f"zenops.{service}.v1.{service}_pb2_grpc")
    full_name = f"zenops.{service}.v1.{service.capitalize()}Service"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        deadline = time.monotonic() + 15
        for name in ("", full_name):
            while True:  # NATS connects in the background: poll with a deadline
                resp = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    break
                assert time.monotonic() < deadline, f"{service} health {name!r} not SERVING"
                await asyncio.sleep(0.05)
        listed = set()
        async for answer in reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        ):
            listed |= {s.name for s in answer.list_services_response.service}
        assert {full_name, "grpc.health.v1.Health"} <= listed
        stub = getattr(pb2_grpc, f"{service.capitalize()}ServiceStub")(ch)
        try:
            await stub.GetServiceInfo(pb2.GetServiceInfoRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            detail = parse_rpc_error(exc)
            assert (detail.code, detail.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"), detail
        else:
            raise AssertionError(f"{service} GetServiceInfo answered without a token")
        if token is None:
            return None
        metadata = (("authorization", f"Bearer {token}"),)
        info = (await stub.GetServiceInfo(pb2.GetServiceInfoRequest(), timeout=5, metadata=metadata)).info
    return MessageToDict(info, preserving_proto_field_name=True)


class TokenSigner:
    """A signing key of the test's own and the JWKS publishing it: real access tokens (and a
    real verifier for them) where identity is not running. Identity's tests cover identity's
    keys; this stands in for its GetJwks answer, byte for byte the same JWK shape."""

    def __init__(self, alg: str = "EdDSA", *, kid: str | None = None, issuer: str = "zenops-identity") -> None:
        import uuid

        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if alg == "EdDSA":
            self.private_key = Ed25519PrivateKey.generate()
        elif alg == "ES256":
            self.private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"alg must be EdDSA or ES256, got {alg!r}")
        self.alg = alg
        self.kid = kid or uuid.uuid4().hex[:16]
        self.issuer = issuer

    @property
    def public_key(self):
        return self.private_key.public_key()

    @property
    def jwk(self) -> dict:
        """The public JWK, as identity's GetJwks publishes it."""
        import base64

        from cryptography.hazmat.primitives import serialization

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        pub = self.public_key
        if self.alg == "EdDSA":
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "kid": self.kid, "alg": "EdDSA", "use": "sig", "crv": "Ed25519", "x": b64(raw)}
        numbers = pub.public_numbers()
        return {
            "kty": "EC",
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }

    def sign(self, claims: dict, *, headers: dict | None = None) -> str:
        """`claims` exactly as given, signed by this key (header alg/typ/kid unless overridden)."""
        import json

        import jwt

        # PyJWS, not PyJWT: no claim checks on the way out, so tests can sign bad claims too.
        return jwt.PyJWS().encode(
            json.dumps(claims).encode(),
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, "typ": "JWT", **(headers or {})},
        )

    def claims(self, *, aud: str = "service", caps=(), roles=(), ttl: float = 900, **extra) -> dict:
        """The claims identity would put in a token: a service token by default; any other
        `aud` makes a user token (sub, tid, sid are fresh UUIDs unless given)."""
        import time
        import uuid

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": aud,
            "roles": list(roles),
            "caps": list(caps),
            "cv": 1,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
        }
        if aud == "service":
            claims["sub"] = "service:test"
        else:
            claims.update(sub=str(uuid.uuid4()), tid=str(uuid.uuid4()), sid=str(uuid.uuid4()))
        claims.update(extra)
        return claims

    def token(self, **kwargs) -> str:
        return self.sign(self.claims(**kwargs))

    def key_source(self, *others: TokenSigner, **kwargs):
        """A JwksKeySource whose fetch answers with this signer's (and `others`') JWKs."""
        from zenops_kit.auth import JwksKeySource

        signers = (self, *others)

        async def fetch() -> list[dict]:
            return [s.jwk for s in signers]

        return JwksKeySource(fetch, **kwargs)

    def verifier(self, **kwargs):
        """A JwtVerifier trusting this signer's key."""
        from zenops_kit.auth import JwtVerifier

        return JwtVerifier(self.key_source(), issuer=self.issuer, **kwargs)


async def poll(check, *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):  # noqa: ASYNC109
    """Await until `check()` (sync or async) returns truthy and return its value; fail after
    `timeout` seconds. Tests wait with this, never with a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
