"""What a scene may point at: files inside the inbox, opened only as GeoTIFF, no network.

GDAL opens far more than files: ``/vsicurl/``, ``/vsis3/`` and plain URLs fetch over HTTP,
a VRT (whatever its extension) reads whichever files or URLs its XML names, and a WMS or
other network driver answers to an XML file named ``.tif``. A scene in the inbox or a STAC
href written by someone else must not make the ingester or the worker read outside the
inbox or send requests. So:

* :func:`inbox_path` resolves an href against the inbox and refuses ``..``, absolute paths,
  URLs (``file://`` too), GDAL virtual file systems (``/vsi...``) and symlinks that leave
  the inbox -- unless the href starts with a prefix the operator allowed
  (``satellite_allowed_prefixes``, e.g. ``/vsis3/bucket/``);
* :func:`check_uri` is the worker's check of a record's uri (an absolute local path, or an
  allowed prefix);
* :func:`open_raster` opens with the GTiff driver only (GDAL does not even try VRT, WMS or
  the others: a VRT saved as ``.tif`` is refused by content, not by name) and checks the
  driver of what it opened, inside :func:`gdal_env`, which turns GDAL's HTTP access off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ALLOWED_DRIVERS", "RasterRefused", "check_uri", "gdal_env", "inbox_path",
           "open_raster"]

ALLOWED_DRIVERS = ("GTiff",)
#: GDAL configuration that keeps it off the network and out of sidecar folders
SAFE_GDAL = {
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".offsite-no-network",  # /vsicurl/ opens nothing
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
}


class RasterRefused(ValueError):
    """A path or file a scene may not use; the message says why (a permanent input error)."""


def _allowed(href: str, allowed: Sequence[str]) -> bool:
    return any(prefix and href.startswith(prefix) for prefix in allowed)


def _remote_or_virtual(href: str) -> str | None:
    low = href.strip().lower()
    if low.startswith("/vsi") or "/vsi" in low.split("?", 1)[0] or low.startswith("\\\\"):
        return "a GDAL virtual file system"
    if "://" in low or low.startswith(("file:", "http:", "https:", "ftp:", "s3:", "gs:")):
        return "a URL"
    if "\0" in href:
        return "a NUL"
    return None


def inbox_path(href: str, inbox: Path, allowed: Sequence[str] = ()) -> str:
    """The path GDAL may open for ``href`` of a file in ``inbox`` (see the module doc)."""
    if _allowed(href, allowed):
        return href
    why = _remote_or_virtual(href)
    if why:
        raise RasterRefused(f"href {href[:200]!r} is {why}; only files inside the inbox")
    rel = Path(href)
    if rel.is_absolute() or href.startswith(("/", "\\")):
        raise RasterRefused(f"href {href[:200]!r} is an absolute path; only relative ones")
    if ".." in rel.parts:
        raise RasterRefused(f"href {href[:200]!r} leaves the inbox ('..')")
    root = inbox.resolve()
    local = (root / rel).resolve()  # also follows symlinks
    if not local.is_relative_to(root):
        raise RasterRefused(f"href {href[:200]!r} resolves outside the inbox")
    return str(local)


def check_uri(uri: str, allowed: Sequence[str] = (), roots: Sequence[Path] = ()) -> str:
    """A record's uri for the worker: an absolute local path (inside one of ``roots`` when
    given) or an allowed prefix; never a URL or a virtual file system."""
    if _allowed(uri, allowed):
        return uri
    why = _remote_or_virtual(uri)
    if why:
        raise RasterRefused(f"uri {uri[:200]!r} is {why}")
    path = Path(uri)
    if not path.is_absolute():
        raise RasterRefused(f"uri {uri[:200]!r} is not an absolute local path")
    if roots and not any(path.resolve().is_relative_to(r.resolve()) for r in roots):
        raise RasterRefused(f"uri {uri[:200]!r} is outside the scene folders")
    return uri


@contextmanager
def gdal_env() -> Iterator[None]:
    """GDAL with network access off (``SAFE_GDAL``), for every open of a scene."""
    import rasterio

    with rasterio.Env(**SAFE_GDAL):
        yield


def harden_process() -> None:
    """Set ``SAFE_GDAL`` in this process's environment too (threads that open rasters
    outside :func:`gdal_env`, e.g. WarpedVRT in a pool). Values already set win."""
    for key, value in SAFE_GDAL.items():
        os.environ.setdefault(key, value)


@contextmanager
def open_raster(path: str | Path, allowed: Sequence[str] = ()) -> Iterator[Any]:
    """``rasterio.open`` restricted to ``ALLOWED_DRIVERS`` (RasterRefused otherwise)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    text = str(path)
    if not _allowed(text, allowed) and _remote_or_virtual(text):
        raise RasterRefused(f"{text[:200]!r} is {_remote_or_virtual(text)}")
    with gdal_env():
        try:
            ds = rasterio.open(text, driver=ALLOWED_DRIVERS[0])
        except RasterioIOError as exc:
            raise RasterRefused(f"{Path(text).name}: not a GeoTIFF GDAL may open ({exc})"[:500]
                                ) from exc
        with ds:
            if ds.driver not in ALLOWED_DRIVERS:
                raise RasterRefused(f"{Path(text).name}: driver {ds.driver} is not allowed")
            yield ds
