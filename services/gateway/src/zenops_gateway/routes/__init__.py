"""HTTP routes, one module per area (`system.py`, later `tasks.py`, `billing.py`, ...).

To add an area: write `routes/<area>.py` with an `APIRouter(prefix="/v1", tags=["<area>"])`
whose handlers take a typed client via `deps.<Svc>Dep`, call one client method (which
calls the RPC with a deadline and raises `UpstreamError` on failure — never catch it) and
return a pydantic response model; then list the router in `ROUTERS` below. See README.
"""

from fastapi import APIRouter

from . import system

ROUTERS: list[APIRouter] = [system.router]
