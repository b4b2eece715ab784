"""CreateTenant, ListTenants."""

from __future__ import annotations

import re
import uuid

from zenops_kit.context import RequestContext
from zenops_kit.db import autocommit, tenant_tx

from .. import recording
from ..auth.common import require_internal, require_user
from ..core import Identity
from ..domain import audit as kinds
from ..domain.tenancy import CUSTOMER, invalid
from ..domain.users import SUPER_ADMIN
from ..store import tenants
from ..store.tenants import Tenant

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


async def create(idn: Identity, ctx: RequestContext, *, slug: str, name: str, kind: str) -> Tenant:
    """Multi-tenant mode only; by the firm (internal tenant). Only customer tenants: the
    internal and external ones exist from the start."""
    tenant_id, _ = require_user(ctx)
    idn.tenancy.check_tenant_creation()
    require_internal(ctx, idn.tenancy.internal_tenant_id)
    if kind not in ("", CUSTOMER):
        raise invalid("kind", "only CUSTOMER tenants can be created")
    if not _SLUG.fullmatch(slug):
        raise invalid("slug", "must be 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise invalid("name", "must be 1-200 characters")
    async with tenant_tx(idn.engine, tenant_id) as conn:
        tenant = await tenants.insert(conn, str(uuid.uuid4()), slug, name, CUSTOMER)
        await recording.audit(
            conn,
            ctx,
            tenant_id=tenant_id,
            kind=kinds.TENANT_CREATED,
            target=tenant.id,
            detail={"slug": slug, "name": name},
        )
    return tenant


async def list_visible(idn: Identity, ctx: RequestContext) -> list[Tenant]:
    """The firm's super admins see every tenant; everyone else their own."""
    tenant_id, _ = require_user(ctx)
    async with autocommit(idn.engine) as conn:
        if idn.tenancy.is_internal(tenant_id) and SUPER_ADMIN in ctx.roles:
            return await tenants.list_all(conn)
        tenant = await tenants.get(conn, tenant_id)
    return [tenant] if tenant else []
