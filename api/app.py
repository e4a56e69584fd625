"""HTTP API: health, Prometheus metrics, and read access to readings, clues and dead letters.

Stateless: every instance talks to the same database, so it scales behind a load balancer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from offsite.settings import get_settings
from storage import queries
from storage.db import open_pool

REQUESTS = Counter("offsite_api_requests_total", "API requests", ["path"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    url = get_settings().database_url
    if not url:
        raise RuntimeError("set OFFSITE_DATABASE_URL (or run `offsite up`)")
    app.state.pool = await open_pool(url)
    try:
        yield
    finally:
        await app.state.pool.close()


app = FastAPI(title="Offsite", lifespan=lifespan)


@app.middleware("http")
async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
    response = await call_next(request)
    route = request.scope.get("route")
    REQUESTS.labels(route.path if route else "unmatched").inc()
    return response


@app.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    try:
        await queries.ping(request.app.state.pool)
    except Exception as exc:
        raise HTTPException(503, f"database: {exc}") from exc
    return {"status": "ok"}


@app.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@app.get("/api/readings")
async def readings(request: Request, station: str, code: str | None = None,
                   since: datetime | None = None,
                   limit: int = Query(500, ge=1, le=10_000)) -> list[dict]:
    return await queries.readings(request.app.state.pool, station, code, since, limit)


@app.get("/api/clues")
async def clues(request: Request, state: str | None = None, modality: str | None = None,
                limit: int = Query(200, ge=1, le=5_000)) -> list[dict]:
    return await queries.clues(request.app.state.pool, state, modality, limit)


@app.get("/api/rejected")
async def rejected(request: Request, source: str | None = None,
                   limit: int = Query(200, ge=1, le=5_000)) -> list[dict]:
    return await queries.rejected(request.app.state.pool, source, limit)
