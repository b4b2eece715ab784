"""Child processes that die with their parent and stop politely."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the process that started it dies (even by kill -9),
    # so crashed test runs leave no servers behind.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def as_user(user: str | None) -> dict:
    """subprocess kwargs that drop to `user` completely (uid, gid and no root groups)."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def spawn(
    cmd: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    return subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        **as_user(user),
        start_new_session=True,  # Ctrl-C reaches only the supervisor, which stops children in order
        preexec_fn=_die_with_parent,
    )


def stop(proc: subprocess.Popen | None, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
    interval: float = 0.05,
) -> None:
    """Poll `check` until it is true; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
    tail = ""
    if log_path is not None and log_path.exists():
        tail = "\n" + "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    state = f" (process exited {proc.returncode})" if proc is not None and proc.poll() is not None else ""
    raise TimeoutError(f"{what} not ready after {timeout}s{state}{tail}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def ensure_traversable(path: Path) -> None:
    """Let an unprivileged server user reach `path` (root's temp dirs are often 0700)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if (mode & 0o055) != 0o055:
            os.chmod(p, mode | 0o055)
