"""HTTP routes, one module per area (`system.py`, `auth.py`, `users.py`, ...).

To add an area: write `routes/<area>.py` with an
`APIRouter(prefix="/v1", tags=["<area>"], route_class=LeanRoute)` (handler.py) whose handlers take the verified caller (`deps.CallerDep`) and a typed client via
`deps.<Svc>Dep`, call one client method with `token=caller.token` (it calls the RPC with a
deadline and raises `UpstreamError` on failure — never catch it) and return a pydantic
response model (`models/<area>.py`); then list the router in `ROUTERS` below. See README.
"""

from fastapi import APIRouter

from . import (
    assignments,
    audit,
    auth,
    billing,
    control,
    documents,
    files,
    intake,
    invoicing,
    masterdata,
    repogen,
    system,
    tasks,
    tenants,
    users,
    webhooks,
)

ROUTERS: list[APIRouter] = [
    system.router,
    auth.router,
    tenants.router,
    users.router,
    audit.router,
    billing.router,
    invoicing.router,
    invoicing.compat_router,
    webhooks.router,
    control.router,
    masterdata.router,
    masterdata.channels_router,
    assignments.router,
    tasks.router,
    intake.router,
    documents.router,
    files.router,
    tasks.analytics_router,
    repogen.router,
]
