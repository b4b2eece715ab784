"""python -m zenops_devstack up | reset — the local suite (`make run`, `make reset`)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from .suite import DOMAIN_SERVICES, Suite


def main() -> int:
    parser = argparse.ArgumentParser(prog="zenops_devstack")
    parser.add_argument("command", choices=["up", "reset"])
    parser.add_argument("--data-dir", default=os.environ.get("ZENOPS_DATA_DIR", ".data"))
    args = parser.parse_args()
    data_dir = Path(args.data_dir)

    if args.command == "reset":
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"removed {data_dir}")
        return 0

    suite = Suite(data_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("starting the ZenOps suite ...")
    suite.up()
    p = suite.ports
    print(
        f"""
ZenOps is running.
  API (through Envoy)   {suite.url}/v1/health   {suite.url}/v1/meta
  API docs              {suite.url}/v1/docs
  gateway (direct)      http://127.0.0.1:{p.gateway}
  gRPC services         {", ".join(f"{s} 127.0.0.1:{p.grpc[s]}" for s in DOMAIN_SERVICES)}
  Envoy admin           http://127.0.0.1:{p.envoy_admin} (localhost only)
  logs                  {suite.logs}/
  data                  {suite.data_dir}  (make reset wipes it)
Press Ctrl-C to stop.""",
        flush=True,
    )
    email, password = suite.admin_credentials
    if suite.new_admin_password:
        # Shown once, on the run that generated it; afterwards only the file has it.
        print(
            f"""
  First start: a super admin was created.
    email     {email}
    password  {password}
  (kept in {suite.data_dir / "secrets.json"}; it is not shown again)""",
            flush=True,
        )
    else:
        print(f"  super admin           {email} (password in {suite.data_dir / 'secrets.json'})", flush=True)
    while not stop.wait(1.0):
        crashed = suite.crashed()
        if crashed:
            print(f"stopping: processes exited unexpectedly: {crashed} (see {suite.logs})", file=sys.stderr)
            suite.down()
            return 1
    print("\nstopping ...", flush=True)
    suite.down()
    print("stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
