"""Checks of one registry resource's fields, shared by the API and the registry folder.

Each check returns the reasons a value is wrong (an empty list when it is fine), never
raises, so a caller can report every fault at once: ``offsite registry validate`` prints
them as ``FILE:LINE: reason``, the API answers them as a 422 per field. The rules are the
issue's (14, point 3): ids present and printable, coordinates present for stations and
cameras and inside WGS84 ranges, camera URLs rtsp/rtsps/http(s)/file, an owner department
that exists, reporting intervals positive. Pure: what exists is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Container
from urllib.parse import urlsplit

RESOURCE_KINDS = ("station", "camera", "scene_collection")
CAMERA_SCHEMES = ("rtsp", "rtsps", "http", "https", "file")
LOCATED = ("station", "camera")  # kinds that must have a position
MAX_ID = 200


def check_id(value: object) -> list[str]:
    """An id is non-empty printable text without surrounding blanks or path separators."""
    if not isinstance(value, str) or not value.strip():
        return ["id is empty"]
    out = []
    if value != value.strip():
        out.append("id has leading or trailing blanks")
    if len(value) > MAX_ID:
        out.append(f"id is longer than {MAX_ID} characters")
    if not value.isprintable() or "/" in value or "\\" in value:
        out.append("id holds a control character or a slash")
    return out


def check_location(kind: str, lon: object, lat: object) -> list[str]:
    """Stations and cameras need both coordinates in WGS84 ranges; others may have none."""
    if lon is None and lat is None:
        return [f"a {kind.replace('_', ' ')} needs lon and lat"] if kind in LOCATED else []
    out = []
    for name, value, limit in (("lon", lon, 180.0), ("lat", lat, 90.0)):
        if value is None:
            out.append(f"{name} is empty")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{name} is not a number")
        elif not math.isfinite(value) or not -limit <= value <= limit:
            out.append(f"{name} {value} is outside [-{limit:g}, {limit:g}]")
    return out


def check_camera_url(url: object) -> list[str]:
    if not isinstance(url, str) or not url.strip():
        return ["url is empty"]
    try:
        parts = urlsplit(url)
    except ValueError:
        return [f"url {url!r} does not parse"]
    if parts.scheme.lower() not in CAMERA_SCHEMES:
        return [f"url scheme {parts.scheme or '(none)'!r} is not one of"
                f" {', '.join(CAMERA_SCHEMES)}"]
    if parts.scheme.lower() != "file" and not parts.netloc:
        return ["url has no host"]
    return []


def check_interval(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return ["interval_s must be a positive whole number of seconds"]
    return []


def check_owner(owner: str | None, departments: Container[str]) -> list[str]:
    """``owner`` must be a department the caller knows (None: the monitoring center)."""
    if owner is None or owner in departments:
        return []
    return [f"owner department {owner!r} is not defined"]


def check_resource(kind: str, fields: dict[str, object], *, creating: bool) -> dict[str, list[str]]:
    """Faults of a resource's fields, by field name (owner departments checked apart).

    ``creating``: every required field must be there; otherwise only the fields given are
    checked (a change), with lon and lat checked together when either is given.
    """
    faults: dict[str, list[str]] = {}

    def add(name: str, reasons: list[str]) -> None:
        if reasons:
            faults.setdefault(name, []).extend(reasons)

    if kind not in RESOURCE_KINDS:
        return {"kind": [f"unknown resource kind {kind!r}"]}
    if creating or "id" in fields:
        add("id", check_id(fields.get("id")))
    if creating or "lon" in fields or "lat" in fields:
        add("location", check_location(kind, fields.get("lon"), fields.get("lat")))
    if kind == "camera" and (creating or "url" in fields):
        add("url", check_camera_url(fields.get("url")))
    if kind == "station" and "interval_s" in fields:
        add("interval_s", check_interval(fields.get("interval_s")))
    return faults
