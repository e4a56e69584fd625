"""The pages (``/ui/`` monitoring center, ``/ui/inspector``, ``/ui/desk``), their
configuration (``GET /ui/config``) and the zones the map draws (``GET /zones``).

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
from api.clue_titles import DEFAULT_LANG, LANGS
from api.errors import Text
from contract.settings import get_settings
from storage.registry import zone_features

STATIC = (Path(__file__).resolve().parent.parent / "web" / "static").resolve()
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
          ".json": "application/json; charset=utf-8", ".png": "image/png"}
_NO_CACHE = {"Cache-Control": "no-cache"}
PAGES = {"": "index.html", "inspector": "inspector.html", "desk": "desk.html"}

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


@router.get("/ui/config", tags=["web"])
async def ui_config() -> dict:
    """What the pages need before sign-in: the base map tiles (``OFFSITE_MAP_TILE_URL``;
    null: the map draws the registry's zones as its base) and the languages."""
    settings = get_settings()
    return {"map_tile_url": settings.map_tile_url,
            "map_tile_attribution": settings.map_tile_attribution,
            "languages": list(LANGS), "default_language": DEFAULT_LANG}


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/{name:path}", include_in_schema=False)
async def ui_file(name: str) -> FileResponse:
    """A page (``/ui/``, ``/ui/inspector``, ``/ui/desk``) or a file of ``web/static``
    (sub-folders allowed; no dot files, nothing outside the folder)."""
    name = PAGES.get(name, name)
    parts = name.split("/")
    path = (STATIC / name).resolve()
    if (any(not p or p.startswith(".") for p in parts) or "\\" in name
            or path.suffix not in _TYPES or not path.is_relative_to(STATIC)
            or not path.is_file()):
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_NO_CACHE)
