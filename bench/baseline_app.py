"""The baseline of `skeleton_path.py`: the same read as `GET /v1/meta/{service}` without the
architecture — one process, Starlette + asyncpg, uvicorn with uvloop + httptools, ONE worker.

It runs the same single query (`SELECT version_num FROM alembic_version`) on the same
database and returns the same JSON shape (name, version, git_sha, build_time, environment,
schema_revision, plus the gateway's status/code). Configuration comes from the environment so that the database password
never appears in a process listing:

    BASELINE_DATABASE_URL   postgresql://role:password@host:port/db   (required)
    BASELINE_POOL_SIZE      asyncpg pool size (default 4)
    BASELINE_VERSION / BASELINE_GIT_SHA / BASELINE_BUILD_TIME / BASELINE_ENVIRONMENT
    BASELINE_TENANT_ID      the tenant `POST /v1/tasks` writes in (ops_write.py's baseline)

`POST /v1/tasks` is `ops_write.py`'s baseline: the same body checks as the gateway's
(title 1–200 characters, priority low|medium|high) and the same row in ops' `tasks` table,
in one explicit transaction (tenant setting for row-level security, INSERT ... RETURNING).

    python bench/baseline_app.py --port 8765
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

QUERY = "SELECT version_num FROM alembic_version"


def _build_time() -> str:
    """ISO-8601 UTC with a `Z`, as the gateway's pydantic models serialise it."""
    raw = os.environ.get("BASELINE_BUILD_TIME")
    built = datetime.fromisoformat(raw) if raw else datetime.now(UTC)
    return built.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# The gateway's ServiceMeta fields, in its order; only schema_revision comes from the database.
_BEFORE = {
    "status": "OK",
    "version": os.environ.get("BASELINE_VERSION", "0.0.0"),
    "git_sha": os.environ.get("BASELINE_GIT_SHA", "unknown"),
    "build_time": _build_time(),
    "environment": os.environ.get("BASELINE_ENVIRONMENT", "local"),
}


@asynccontextmanager
async def lifespan(app: Starlette):
    size = int(os.environ.get("BASELINE_POOL_SIZE", "4"))
    app.state.pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=size, max_size=size)
    try:
        yield
    finally:
        await app.state.pool.close()


async def meta(request: Request) -> JSONResponse:
    revision = await request.app.state.pool.fetchval(QUERY)
    return JSONResponse(
        {"name": request.path_params["service"], **_BEFORE, "schema_revision": revision or "", "code": None}
    )


_INSERT_TASK = (
    "INSERT INTO tasks (id, tenant_id, title, assignee_id, created_by, priority) "
    "VALUES ($1, $2, $3, $4, $4, $5) RETURNING id::text, title, priority, status, created_at"
)
_ACTOR = str(uuid.uuid4())


async def create_task(request: Request) -> JSONResponse:
    try:
        body = json.loads(await request.body())
        title, priority = body["title"], body.get("priority", "medium")
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"status": 400, "code": "BAD_REQUEST"}, status_code=400)
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 200 or priority not in ("low", "medium", "high"):
        return JSONResponse({"status": 400, "code": "VALIDATION_FAILED"}, status_code=400)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", os.environ["BASELINE_TENANT_ID"])
        row = await conn.fetchrow(
            _INSERT_TASK,
            uuid.uuid4(),
            uuid.UUID(os.environ["BASELINE_TENANT_ID"]),
            title.strip(),
            _ACTOR,
            priority.upper(),
        )
    return JSONResponse(
        {
            "id": row["id"],
            "title": row["title"],
            "priority": row["priority"].lower(),
            "status": row["status"].lower(),
            "created_at": row["created_at"].isoformat(),
        },
        status_code=201,
    )


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"status": "alive"})


app = Starlette(
    routes=[
        Route("/v1/meta/{service}", meta),
        Route("/v1/tasks", create_task, methods=["POST"]),
        Route("/v1/livez", livez),
    ],
    lifespan=lifespan,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
