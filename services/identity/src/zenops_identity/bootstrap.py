"""First start: the two tenants, the first super admin, the first signing key.

Runs before the server accepts calls, under an advisory lock (two replicas starting on an
empty database create one of each). The super admin is created only while the internal
tenant has no user at all: its email and password come from ZENOPS_BOOTSTRAP_ADMIN_EMAIL /
ZENOPS_BOOTSTRAP_ADMIN_PASSWORD. Without a password, production refuses to start; a local
run generates one and prints it once, to stderr, not through the log pipeline.
"""

from __future__ import annotations

import secrets
import sys
import uuid

from sqlalchemy import text

from zenops_kit.context import ANONYMOUS
from zenops_kit.db import tenant_tx
from zenops_kit.errors import InvalidArgument

from . import recording
from .auth.signing import rotate_if_due
from .clock import utcnow
from .core import Identity
from .credentials.policy import check_password, normalize_email
from .domain import audit as kinds
from .domain.tenancy import EXTERNAL, INTERNAL
from .domain.users import SUPER_ADMIN
from .store import tenants, users

_LOCK_KEY = 0x5A454E4F_50534230  # "ZENOPSB0"


class BootstrapError(RuntimeError):
    """Identity cannot start: the first start's configuration is incomplete or inconsistent."""


async def bootstrap(idn: Identity, *, out=None) -> bool:
    """Idempotent. Returns True when this call created the super admin."""
    s = idn.settings
    internal, external = s.internal_tenant_id, s.external_tenant_id
    async with tenant_tx(idn.engine, internal) as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        await tenants.ensure(conn, internal, "internal", "Internal", INTERNAL)
        await tenants.ensure(conn, external, "external", "External (portal)", EXTERNAL)
        for tenant_id, kind, name in (
            (internal, INTERNAL, "ZENOPS_INTERNAL_TENANT_ID"),
            (external, EXTERNAL, "ZENOPS_EXTERNAL_TENANT_ID"),
        ):
            tenant = await tenants.get(conn, tenant_id)
            if tenant is None or tenant.kind != kind:
                raise BootstrapError(f"the database already has an {kind.lower()} tenant whose id is not {name}")
        created = not await users.any_user(conn)
        if created:
            email, password, generated = _admin_credentials(idn)
            await users.insert(
                conn,
                user_id=str(uuid.uuid4()),
                tenant_id=internal,
                email=email,
                display_name="Administrator",
                password_hash=await idn.hasher.hash(password),
                roles=[SUPER_ADMIN],
                channel_id=None,
                now=utcnow(),
            )
            await recording.audit(
                conn,
                ANONYMOUS,
                tenant_id=internal,
                kind=kinds.BOOTSTRAP_ADMIN_CREATED,
                actor="system",
                target=email,
                detail={"credentials": "generated" if generated else "environment"},
            )
    if created and generated:
        # Once, on the terminal of whoever started it; never through the JSON logs.
        print(
            f"\nidentity: first start — super admin created\n  email     {email}\n  password  {password}\n"
            "  (shown once; change it after logging in)\n",
            file=out or sys.stderr,
            flush=True,
        )
    await idn.keys.ensure_active()
    await rotate_if_due(idn)
    return created


def _admin_credentials(idn: Identity) -> tuple[str, str, bool]:
    s = idn.settings
    try:
        email = normalize_email(s.bootstrap_admin_email, field="ZENOPS_BOOTSTRAP_ADMIN_EMAIL")
    except InvalidArgument as err:
        raise BootstrapError(_describe(err)) from None
    if s.bootstrap_admin_password is None:
        if s.is_production:
            raise BootstrapError(
                "the database has no user yet: set ZENOPS_BOOTSTRAP_ADMIN_PASSWORD (and ZENOPS_BOOTSTRAP_ADMIN_EMAIL) "
                "for the first start, so the first super admin can be created"
            )
        while True:  # random, so the policy can only fail by a freak match with the email
            password = secrets.token_urlsafe(18)
            if not check_password(password, email=email, display_name="Administrator"):
                return email, password, True
    password = s.bootstrap_admin_password.get_secret_value()
    violations = check_password(
        password, email=email, display_name="Administrator", field="ZENOPS_BOOTSTRAP_ADMIN_PASSWORD"
    )
    if violations:
        raise BootstrapError("; ".join(f"{v.field} {v.description}" for v in violations))
    return email, password, False


def _describe(err: InvalidArgument) -> str:
    return "; ".join(f"{v.field} {v.description}" for v in err.violations) or err.message
