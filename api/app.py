"""HTTP API: health, metrics, and the authenticated monitoring-center and department API.

Stateless: every instance talks to the same database, so it scales behind a load balancer
(each instance LISTENs for clue changes itself). Every data endpoint needs a bearer token
(``api/auth.py``) and applies the department access rules (``api/access.py``). The OpenAPI
document is at ``/openapi.json`` (UI at ``/docs``). Routers: ``api/clues.py`` (clues,
evidence, SSE), ``api/health.py`` (camera and station health), ``api/access.py`` (access
requests, grants, audit), ``api/web.py`` (the monitoring-center page at ``/ui/``, zones),
``api/tasks.py`` (inspector tasks, MQTT push), ``api/stats.py`` (work statistics),
``api/resources.py`` (the resource directory and registry changes), ``api/risk.py``
(risk per regulated entity, kept current by ``api/risk_feed.py``),
``api/inspections.py`` (random inspection draws, joint inspections); ``api/web.py`` also
serves the inspector page (``/ui/inspector``), the department desk (``/ui/desk``) and their
configuration (``/ui/config``). Clue titles and severity: ``api/clue_titles.py``. The API keeps
no copy of the registry (every request reads it), so registry changes need no reload here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from api import access, clues, health, inspections, resources, risk, shutdowns, stats, tasks, web
from api.auth import User, current_user, require_roles
from api.errors import AUTH, Problem, Text, Time, errors, validation_error
from contract.settings import get_settings
from storage import queries
from storage.db import open_pool

REQUESTS = Counter("offsite_api_requests_total", "API requests", ["path"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = get_settings().database_url
    if not url:
        raise RuntimeError("set OFFSITE_DATABASE_URL (or run `offsite up`)")
    app.state.pool = await open_pool(url)
    # opened on first use, on this pool (api/tasks.py): one from an earlier lifespan of the
    # same app object (an earlier server in the same process) holds a closed pool
    app.state.evidence_store = None
    app.state.clue_feed = clues.ClueFeed(url)
    app.state.clue_feed.start()
    try:
        yield
    finally:
        await app.state.clue_feed.stop()
        await app.state.pool.close()


app = FastAPI(title="Offsite", lifespan=lifespan,
              description="Off-site regulatory monitoring: clues, evidence, live stream, "
                          "health, and department resource access.")
app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
for module in (clues, health, access, resources, shutdowns, tasks, stats, risk, inspections,
               web):
    app.include_router(module.router, responses=errors(*AUTH))


@app.middleware("http")
async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
    response = await call_next(request)
    route = request.scope.get("route")
    REQUESTS.labels(route.path if route else "unmatched").inc()
    return response


@app.get("/healthz", tags=["service"],
         responses={503: {"model": Problem, "description": "the database does not answer"}})
async def healthz(request: Request) -> dict[str, str]:
    try:
        await queries.ping(request.app.state.pool)
    except Exception as exc:
        raise HTTPException(503, f"database: {exc}") from exc
    return {"status": "ok"}


@app.get("/metrics", tags=["service"], response_class=PlainTextResponse,
         responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                          "description": "Prometheus text format"}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/me", tags=["access"], responses=errors(401))
async def me(user: User = Depends(current_user)) -> dict[str, str]:
    return user.as_dict()


@app.get("/api/readings", tags=["data"], responses=errors(*AUTH))
async def readings(request: Request, station: Text, code: Text | None = None,
                   since: Time | None = None,
                   until: Time | None = Query(None, description="time < until"),
                   limit: int = Query(500, ge=1, le=10_000),
                   user: User = Depends(current_user)) -> list[dict]:
    """A station's readings, newest first (owner, a grant with ``history``, or admin)."""
    await access.check(request, user, "readings", "station", station)
    return await queries.readings(request.app.state.pool, station, code, since, limit, until)


@app.get("/api/rejected", tags=["data"], responses=errors(*AUTH))
async def rejected(request: Request, source: Text | None = None,
                   limit: int = Query(200, ge=1, le=5_000),
                   user: User = Depends(require_roles("admin", "center_operator"))) -> list[dict]:
    """Dead letters (operations data: admins and the monitoring center)."""
    return await queries.rejected(request.app.state.pool, source, limit)
