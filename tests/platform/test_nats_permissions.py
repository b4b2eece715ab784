"""NATS authentication and authorisation: a real nats-server with the production users and
permissions (deploy/k8s/base/nats/permissions.conf, as `make run` starts it).

A service publishes only its own `zenops.<svc>.>` events, the gateway publishes none, an
anonymous connection is refused; the Kubernetes nats.conf names the same users and passes
`nats-server -t` with the same permissions file.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig

from zenops_devstack.nats import PERMISSIONS_CONF, USERS, NatsServer, nats_binary
from zenops_devstack.process import free_port
from zenops_kit.events.streams import ensure_stream, stream_name
from zenops_kit.settings import KitSettings
from zenops_kit.tls import nats_options

K8S_NATS_CONF = PERMISSIONS_CONF.with_name("nats.conf")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    srv = NatsServer(
        tmp_path_factory.mktemp("nats-auth"),
        free_port(),
        free_port(),
        passwords={user: uuid.uuid4().hex for user in USERS},
    )
    srv.start()
    yield srv
    srv.stop()


class Connection:
    """A NATS connection as a process of the suite opens it, recording async errors."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.nc: nats.NATS | None = None

    async def on_error(self, exc: Exception) -> None:
        self.errors.append(exc)

    def violations(self) -> list[str]:
        return [str(e) for e in self.errors if "permissions violation" in str(e).lower()]

    async def wait_violation(self, subject: str, timeout: float = 5.0) -> str:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [v for v in self.violations() if subject.lower() in v.lower()]  # nats-py lower-cases it
            if found:
                return found[0]
            assert asyncio.get_running_loop().time() < deadline, f"no violation for {subject}: {self.errors}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def connect(server: NatsServer) -> AsyncIterator:
    opened: list[Connection] = []

    async def open_as(user: str) -> Connection:
        conn = Connection()
        settings = KitSettings(nats_url=server.url, nats_user=user, nats_password=server.passwords[user])
        conn.nc = await nats.connect(
            server.url, error_cb=conn.on_error, allow_reconnect=False, **nats_options(settings)
        )
        opened.append(conn)
        return conn

    yield open_as
    for conn in opened:
        await conn.nc.close()


async def _count(js, producer: str) -> int:
    return (await js.stream_info(stream_name(producer))).state.messages


async def test_a_service_publishes_its_own_events_only(connect) -> None:
    billing = await connect("billing")
    ops = await connect("ops")
    await ensure_stream(billing.nc.jetstream(), "billing")
    js = ops.nc.jetstream()
    await ensure_stream(js, "ops")  # its own stream: allowed

    ack = await js.publish("zenops.ops.task.created", b"{}", headers={"Nats-Msg-Id": uuid.uuid4().hex})
    assert ack.stream == stream_name("ops")

    before = await _count(billing.nc.jetstream(), "billing")
    await ops.nc.publish("zenops.billing.invoice.paid", b"forged")
    await ops.nc.flush()
    violation = await ops.wait_violation("zenops.billing.invoice.paid")
    assert "publish" in violation.lower()
    # ops' own connection is still usable after the refusal, and billing's stream is untouched
    await js.publish("zenops.ops.task.updated", b"{}")
    assert await _count(billing.nc.jetstream(), "billing") == before
    # nor may ops reshape another producer's stream it does not consume
    with pytest.raises((NatsError, asyncio.TimeoutError)):
        await ops.nc.jetstream(timeout=1).add_stream(
            StreamConfig(name=stream_name("identity"), subjects=["zenops.identity.>"])
        )
    await ops.wait_violation("$JS.API.STREAM.CREATE.ZENOPS_IDENTITY")


async def test_the_gateway_publishes_no_event(connect) -> None:
    gateway = await connect("gateway")
    for subject in ("zenops.identity.session.revoked", "zenops.gateway.anything", "zenops.ops.task.created"):
        await gateway.nc.publish(subject, b"forged")
        await gateway.nc.flush()
        await gateway.wait_violation(subject)
    # it may read identity's account-level JetStream info (its health check)
    await gateway.nc.jetstream().account_info()


async def test_replies_only_on_the_users_own_inbox(connect) -> None:
    ops = await connect("ops")
    await ops.nc.subscribe("_INBOX_billing.>")
    await ops.nc.flush()
    await ops.wait_violation("_INBOX_billing.>")


async def test_anonymous_and_wrong_password_are_refused(server: NatsServer) -> None:
    for kwargs in ({}, {"user": "ops", "password": "not-the-password"}, {"user": "nobody", "password": "x"}):
        with pytest.raises(NatsError, match="(?i)authorization"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, **kwargs)


def test_the_cluster_config_names_every_user_with_the_same_permissions(tmp_path: Path) -> None:
    text = K8S_NATS_CONF.read_text()
    for user in USERS:
        entry = (
            f"{{ user: {user}, password: $ZENOPS_NATS_PASSWORD_{user.upper()}, "
            f"permissions: $ZENOPS_PERMISSIONS_{user.upper()} }}"
        )
        assert entry in text, user
    assert "no_auth_user" not in text
    # nats-server itself accepts it with the shared permissions file and a passwords file
    # shaped like the Secret's.
    shutil.copyfile(K8S_NATS_CONF, tmp_path / "nats.conf")
    shutil.copyfile(PERMISSIONS_CONF, tmp_path / "permissions.conf")
    shutil.copyfile(K8S_NATS_CONF.with_name("tls.conf"), tmp_path / "tls.conf")  # base: no TLS block
    (tmp_path / "passwords.conf").write_text(
        "".join(f'ZENOPS_NATS_PASSWORD_{u.upper()}: "{uuid.uuid4().hex}"\n' for u in USERS)
    )
    proc = subprocess.run(
        [nats_binary(), "-c", str(tmp_path / "nats.conf"), "-t"],
        capture_output=True,
        text=True,
        env={**os.environ, "SERVER_NAME": "nats-0"},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
