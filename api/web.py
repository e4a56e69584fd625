"""The monitoring-center page (``/ui/``) and the zones it draws (``GET /zones``).

The page is plain HTML, CSS and JavaScript in ``web/static`` (no build step, nothing loaded
from the internet). Its files are public; everything it shows comes from the authenticated
API with the bearer token the operator enters (kept in ``localStorage``; ``?token=`` in the
page address also works). The live list uses ``/clues/stream`` through ``EventSource``,
which cannot send headers, so the stream also takes the token as the ``access_token``
query parameter (``api/auth.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

from api.auth import User, current_user
from api.errors import Text
from storage.registry import zone_features

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["web"])


@router.get("/zones")
async def zones(request: Request, kind: Text | None = None,
                user: User = Depends(current_user)) -> dict:
    """The registered (active) zones as a GeoJSON FeatureCollection (WGS84 lon/lat).

    Read from the registry on each call: a zone imported with ``offsite registry import``
    shows on the map at the next page load, without restarting the API.
    """
    return {"type": "FeatureCollection",
            "features": await zone_features(request.app.state.pool, kind)}


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
