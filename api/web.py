"""The monitoring-center page (``/ui/``) and the zones it draws (``GET /zones``).

The page is plain HTML, CSS and JavaScript in ``web/static`` (no build step, nothing loaded
from the internet). Its files are public; everything it shows comes from the authenticated
API with the bearer token the operator enters (kept in ``localStorage``; ``?token=`` in the
page address also works). The live list uses ``/clues/stream`` through ``EventSource``,
which cannot send headers, so the stream also takes the token as the ``access_token``
query parameter (``api/auth.py``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from psycopg_pool import AsyncConnectionPool

from api.auth import User, current_user
from api.errors import Text
from geo.zones import ZoneIndex
from storage.registry_listen import load_registry

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["web"])


@lru_cache(maxsize=1)
def _demo_zones() -> dict:
    return {"type": "FeatureCollection",
            "features": [z.to_feature() for z in ZoneIndex.demo().zones]}


class ZoneCache:
    """The registry's active zones as GeoJSON, read once and kept until a registry notice
    for zones (``forget``, called by the API's ``RegistryListener``). A registry without
    zones serves the shipped demo set, until the demo imports its own registry folder."""

    def __init__(self) -> None:
        self._data: dict | None = None
        self._generation = 0

    def forget(self) -> None:
        self._data = None
        self._generation += 1

    async def get(self, pool: AsyncConnectionPool) -> dict:
        data = self._data
        if data is None:
            generation = self._generation
            rows = (await load_registry(pool, ["zone"]))["zone"]
            data = ({"type": "FeatureCollection", "features": [_feature(r) for r in rows]}
                    if rows else _demo_zones())
            if generation == self._generation:  # no notice came while reading
                self._data = data
        return data


def _feature(row: dict) -> dict:
    props = {"id": row["id"], "kind": row["kind"], "name": row["name"],
             "county": row["county"], "owner_dept": row["owner_dept"],
             **(row["properties"] or {})}
    return {"type": "Feature", "properties": props, "geometry": row["geometry"]}


@router.get("/zones")
async def zones(request: Request, kind: Text | None = None,
                user: User = Depends(current_user)) -> dict:
    """The regulatory zones of the registry as a GeoJSON FeatureCollection (WGS84 lon/lat)."""
    data = await request.app.state.zone_cache.get(request.app.state.pool)
    if kind is None:
        return data
    return {**data, "features": [f for f in data["features"]
                                 if f["properties"].get("kind") == kind]}


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", include_in_schema=False)
async def ui_index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers=_NO_CACHE)


@router.get("/ui/{name}", include_in_schema=False)
async def ui_file(name: str) -> FileResponse:
    """A file of ``web/static`` (flat folder: no sub-paths, no dot files)."""
    path = STATIC / name
    if (name.startswith(".") or "/" in name or "\\" in name or path.suffix not in _TYPES
            or not path.is_file()):
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_NO_CACHE)
